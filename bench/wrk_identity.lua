-- wrk script for bench/identity_bench.py. $WRK_MODE picks the workload; $WRK_LINES_FILE holds
-- one input per line, dealt out to wrk's threads (line i goes to thread i mod $WRK_THREADS):
--   login    lines "EMAIL PASSWORD": POST /v1/auth/login, accounts round-robin, and a distinct
--            X-Forwarded-For per request (ledgerd runs with --trusted-proxy 127.0.0.1), so the
--            per-IP limit (5 per 15 min) never answers 429. Thread t sends from (10+t).x.y.z.
--   refresh  lines "REFRESH_TOKEN": POST /v1/auth/refresh. A refresh token is good once
--            (rotation), so each thread keeps a pool of unused tokens: request() takes one,
--            response() puts back the new one from the reply. A connection has one request in
--            flight, so one token per connection should do, but with exactly that many a thread
--            sometimes found its pool empty without having lost a token: identity_bench.py gives
--            two per connection. Likely cause (found with mode once, not re-tested here): wrk
--            calls request() once in the first thread's state to check the script
--            (script_verify_request in wrk.c), which takes a token that is never sent. A request
--            sent without a token is answered 401 and counted in "sent_without_token".
--   me       lines "ACCESS_TOKEN": GET /v1/me with the tokens round-robin as Bearer.
--   signed   lines "SESSION_TOKEN DPOP_PROOF" (bench/exclusive_bench.py): POST
--            /v1/secure/exclusive/validate with Authorization: DPoP and the pre-signed proof, each
--            line exactly once (a proof is single-use), with the delay/done machinery of once.
--   pay      lines "ACCESS_TOKEN IDEMPOTENCY_KEY JSON" (bench/payments_bench.py): POST /v1/payments
--            with the Bearer token and the key, each line exactly once (delay/done of once);
--            sending the same lines again measures idempotent replays.
--   once     lines "PATH JSON": POST JSON to PATH (with $WRK_TOKEN as Bearer when set), each line exactly once (registrations, email
--            verifications, OTP code requests, OTP verifies: things that can be done only once),
--            with a distinct X-Forwarded-For per request from ($WRK_IP_BASE+t).x.y.z. delay()
--            reserves a line for each request before it is built; a connection that finds none
--            left parks (delay of an hour), so no request is sent beyond the lines and nothing
--            but the lines' requests enters the latency histogram. When a thread has all its
--            answers it creates $WRK_DONE_DIR/<tid> and stops; identity_bench.py then ends wrk
--            with SIGINT (wrk sleeps its -d out otherwise). Because wrk's duration then includes
--            startup and the wait for the slowest thread's marker, the thread also records, on
--            CLOCK_MONOTONIC, its first request and its last answer ("span_us" below: first
--            request of any thread to last answer of any thread).
-- The "BENCH_JSON" summary line comes from wrk_report.lua (loaded from $WRK_BENCH_DIR).
dofile(os.getenv("WRK_BENCH_DIR") .. "/wrk_report.lua")

local mode = os.getenv("WRK_MODE")
local once = mode == "once" or mode == "signed" or mode == "pay"  -- each line exactly once
local items = {}
local counter = 0

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec* ts);
]]
local ts = ffi.new("bench_timespec")
local function now_us()  -- CLOCK_MONOTONIC (1), shared by the threads
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

function init(args)  -- thread state
  local nthreads = tonumber(os.getenv("WRK_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("WRK_LINES_FILE")) do
    if line ~= "" then
      if i % nthreads == tid then table.insert(items, line) end
      i = i + 1
    end
  end
  assert(#items > 0, "no input lines for thread " .. tid)
end

local ip_base = tonumber(os.getenv("WRK_IP_BASE") or "10")
-- once: $WRK_TOKEN, when set, goes out as a Bearer token (POST /v1/events needs one).
local bearer = (os.getenv("WRK_TOKEN") or "") ~= "" and "Bearer " .. os.getenv("WRK_TOKEN") or nil
local function forwarded_for(n)
  return string.format("%d.%d.%d.%d", ip_base + (tid or 0), math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256)
end

-- once: lines reserved by delay(), lines sent, answers, first request / last answer (us).
reserved, answered, first_us, last_us = 0, 0, 0, 0
if once then
  function delay()
    if reserved < #items then
      reserved = reserved + 1
      return 0
    end
    return 3600 * 1000  -- nothing left for this connection
  end
end

function request()
  if once then
    -- Only a request reserved by delay() takes a line. wrk also calls request() once in the first
    -- thread's state before it runs, to check the script (script_verify_request): that call
    -- must not use up a line (it did: one line was never sent and a connection found none).
    if counter >= reserved then return wrk.format("GET", "/healthz") end
    counter = counter + 1
    if counter == 1 then first_us = now_us() end
    if mode == "signed" then
      local token, proof = items[counter]:match("^(%S+) (%S+)$")
      return wrk.format("POST", "/v1/secure/exclusive/validate",
                        {["Content-Type"] = "application/json",
                         ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof},
                        '{"action":"bench"}')
    end
    if mode == "pay" then
      local token, key, body = items[counter]:match("^(%S+) (%S+) (.*)$")
      return wrk.format("POST", "/v1/payments",
                        {["Content-Type"] = "application/json",
                         ["Authorization"] = "Bearer " .. token, ["Idempotency-Key"] = key}, body)
    end
    local path, body = items[counter]:match("^(%S+) (.*)$")
    return wrk.format("POST", path,
                      {["Content-Type"] = "application/json",
                       ["X-Forwarded-For"] = forwarded_for(counter),
                       ["Authorization"] = bearer}, body)
  end
  counter = counter + 1
  if mode == "login" then
    local email, password = items[(counter - 1) % #items + 1]:match("^(%S+) (%S+)$")
    return wrk.format("POST", "/v1/auth/login",
                      {["Content-Type"] = "application/json",
                       ["X-Forwarded-For"] = forwarded_for(counter)},
                      string.format('{"email":"%s","password":"%s"}', email, password))
  elseif mode == "refresh" then
    -- An empty pool means refreshes failed; the request is then answered 401 and counted.
    local token = table.remove(items)
    if not token then
      exhausted = exhausted + 1
      token = "exhausted"
    end
    return wrk.format("POST", "/v1/auth/refresh", {["Content-Type"] = "application/json"},
                      string.format('{"refreshToken":"%s"}', token))
  else
    return wrk.format("GET", "/v1/me",
                      {["Authorization"] = "Bearer " .. items[(counter - 1) % #items + 1]})
  end
end

-- login and refresh count their statuses and keep the first refusal's body (BENCH_STATUS line);
-- GET /v1/me does not, so that its wrk threads run no Lua per response.
statuses = {}
first_refusal = ""
exhausted = 0  -- refresh requests sent with the thread's pool empty
local expected = tonumber(os.getenv("WRK_EXPECT") or "200")  -- once: the status wanted
local function count(status, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= expected and first_refusal == "" then
    first_refusal = (once and status .. " " or "") .. body:sub(1, 300)
  end
end

if mode == "login" then
  function response(status, headers, body) count(status, body) end
elseif once then
  function response(status, headers, body)
    count(status, body)
    answered = answered + 1
    if answered == #items then
      last_us = now_us()
      local f = io.open(os.getenv("WRK_DONE_DIR") .. "/" .. tid, "w")
      if f then f:close() end
      wrk.thread:stop()
    end
  end
elseif mode == "refresh" then
  function response(status, headers, body)
    count(status, body)
    if status == 200 then
      local token = body:match('"refreshToken"%s*:%s*"([^"]+)"')
      if token then
        table.insert(items, token)
      elseif first_refusal == "" then
        first_refusal = "200 without a token: " .. body:sub(1, 300)
      end
    end
  end
end

local threads = {}
local report = done
function setup(thread)  -- main state, once per thread
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  report(summary, latency, requests)
  if mode == "me" then return end
  local total, refusal, empty = {}, "", 0
  local first, last, answers, lines, all_done = math.huge, 0, 0, 0, true
  for _, t in ipairs(threads) do
    empty = empty + t:get("exhausted")
    if t:get("first_us") > 0 then first = math.min(first, t:get("first_us")) end
    last = math.max(last, t:get("last_us"))
    if t:get("last_us") == 0 then all_done = false end
    answers = answers + t:get("answered")
    lines = lines + t:get("reserved")
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
    if refusal == "" then refusal = t:get("first_refusal"):gsub("[\r\n]", " ") end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%d": %d', status, n)) end
  -- once: span_us is 0 unless every thread got all its answers.
  local span = 0
  if once and all_done and first < math.huge then span = last - first end
  io.write(string.format('BENCH_STATUS {"statuses": {%s}, "first_refusal": %q, ' ..
                         '"sent_without_token": %d, "answered": %d, "reserved": %d, ' ..
                         '"span_us": %d}\n', table.concat(parts, ", "), refusal, empty,
                         answers, lines, span))
end
