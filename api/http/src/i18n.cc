#include "api/http/i18n.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace sechex::api {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// q-value in thousandths (RFC 9110 "qvalue": 0, 1, 0.x up to three digits); -1 when malformed.
int parse_q(std::string_view v) {
  if (v == "1" || v == "1." || v == "1.0" || v == "1.00" || v == "1.000") return 1000;
  if (v.empty() || v[0] != '0') return -1;
  if (v.size() == 1) return 0;
  if (v[1] != '.' || v.size() > 5) return -1;
  int q = 0, scale = 100;
  for (const char c : v.substr(2)) {
    if (c < '0' || c > '9') return -1;
    q += (c - '0') * scale;
    scale /= 10;
  }
  return q;
}

bool is_chinese(const std::string& tag) {
  return tag == "zh" || tag == "zh-cn" || tag == "zh-hans" || tag == "zh-hans-cn";
}

struct Entry {
  std::string_view code;
  std::string_view zh_cn;
};

// One message per code: the English text of a handler may be more specific, the details carry
// the specifics in every language.
constexpr Entry kZhCn[] = {
    {"invalid_request", "请求无效"},
    {"payload_too_large", "请求体超过大小限制"},
    {"unsupported_media_type", "请使用 application/json"},
    {"not_found", "未找到"},
    {"method_not_allowed", "此端点不支持该方法"},
    {"unauthorized", "需要身份验证"},
    {"invalid_token", "访问令牌无效或已过期"},
    {"forbidden", "此操作需要其他角色"},
    {"subject_erased", "该主体已被删除，不再接受新事件"},
    {"overloaded", "服务器繁忙，请稍后重试"},
    {"unavailable", "服务暂时不可用，请稍后重试"},
    {"internal_error", "内部错误"},
    {"request_timeout", "请求未在规定时间内收到"},
    {"rate_limited", "请求过于频繁，请稍后重试"},
    {"account_locked", "账户已锁定"},
    {"invalid_credentials", "邮箱或密码错误"},
    {"email_not_verified", "邮箱尚未验证"},
    {"email_taken", "该邮箱已被注册"},
    {"weak_password", "密码强度不足"},
    {"invalid_email", "邮箱地址无效"},
    {"token_invalid", "令牌无效"},
    {"token_expired", "令牌已过期"},
    {"invalid_code", "验证码错误"},
    {"code_expired", "验证码已过期"},
    {"reauth_required", "需要重新验证身份"},
    {"replay_detected", "检测到重放请求"},
    {"misdirected", "此节点不负责这些事件所属的分区，请发送到该分区的所属节点"},
    {"consent_required", "注册需要您同意数据处理"},
    {"csrf_rejected", "请求缺少有效的 CSRF 令牌或来自其他站点"},
};

}  // namespace

std::string_view negotiate_language(std::string_view header) {
  int best_q = 0;
  std::string_view best = "en";
  int en_q = -1;
  while (!header.empty()) {
    const auto comma = header.find(',');
    const auto item = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    if (item.empty()) continue;
    const auto semi = item.find(';');
    const auto tag = lower(trim(item.substr(0, semi)));
    int q = 1000;
    if (semi != std::string_view::npos) {
      const auto param = trim(item.substr(semi + 1));
      if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') return "en";
      q = parse_q(param.substr(2));
      if (q < 0) return "en";
    }
    if (is_chinese(tag)) {
      if (q > best_q) {
        best_q = q;
        best = "zh-CN";
      }
    } else if (tag == "en" || tag.rfind("en-", 0) == 0 || tag == "*") {
      en_q = std::max(en_q, q);
    }
  }
  // English wins ties: it is the default and the language of the handlers' texts.
  return best_q > 0 && best_q > en_q ? best : "en";
}

std::string_view localized_message(std::string_view code, std::string_view language) {
  if (language != "zh-CN") return {};
  for (const auto& e : kZhCn) {
    if (e.code == code) return e.zh_cn;
  }
  return {};
}

void localise_error(Response& response, std::string_view language) {
  if (language == "en" || response.status < 400 || response.next_chunk ||
      response.content_type != "application/json") {
    return;
  }
  auto body = nlohmann::json::parse(response.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("error") ||
      !body["error"].is_object() || !body["error"].contains("code") ||
      !body["error"]["code"].is_string()) {
    return;
  }
  const auto text = localized_message(body["error"]["code"].get<std::string>(), language);
  if (text.empty()) return;
  body["error"]["message"] = text;
  response.body = body.dump();
  response.headers.emplace_back("Content-Language", std::string(language));
}

}  // namespace sechex::api
