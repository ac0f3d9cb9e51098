"""The reference Standard Webhooks library (PyPI `standardwebhooks`) as a test oracle.

  standardwebhooks_oracle.py sign SECRET MSG_ID TIMESTAMP BODY_FILE   -> the signature header
  standardwebhooks_oracle.py verify SECRET MSG_ID TIMESTAMP BODY_FILE SIGNATURE
                                                                 -> exit 0 valid, 1 not
"""
import datetime
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    cmd, secret, msg_id, ts, body_file = sys.argv[1:6]
    with open(body_file, encoding="utf-8") as f:
        body = f.read()
    hook = Webhook(secret)
    if cmd == "sign":
        when = datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc)
        print(hook.sign(msg_id, when, body))
        return 0
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": sys.argv[6]}
    try:
        hook.verify(body, headers)
    except WebhookVerificationError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
