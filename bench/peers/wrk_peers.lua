-- wrk script for bench/peers_bench.py: the same script, with the same connections and threads,
-- drives ledgerd and Keycloak; only the path, the bodies and the reply's token field differ
-- (set by the environment). $WRK_LINES_FILE holds one input per line, dealt out to wrk's threads
-- (line i goes to thread i mod $WRK_THREADS).
--   login    lines: complete request bodies (ledgerd: {"email":..,"password":..}; Keycloak: the
--            form of the password grant). POST $WRK_PATH with Content-Type $WRK_CONTENT_TYPE,
--            lines round-robin, a distinct X-Forwarded-For per request (ledgerd runs with
--            --trusted-proxy 127.0.0.1 and limits logins per address; Keycloak in dev mode
--            ignores the header). Thread t sends from ($WRK_IP_BASE+t).x.y.z; peers_bench.py
--            gives every run its own base, so no address repeats within a run of the bench.
--   refresh  lines: refresh tokens. POST $WRK_PATH with $WRK_REFRESH_BODY, in which "{token}" is
--            replaced by a token. Each token is used once: a thread keeps a pool of unused tokens,
--            request() takes one, response() puts back the new one found in the reply's JSON
--            field $WRK_TOKEN_FIELD. peers_bench.py gives two tokens per connection (wrk calls
--            request() once more to check the script, see bench/wrk_identity.lua); a request
--            sent with the pool empty carries "exhausted" (refused) and is counted.
--   read     lines: access tokens. GET $WRK_PATH with the tokens round-robin as Bearer.
-- Statuses are counted in every mode (the same Lua work per response for both servers) and
-- printed as "BENCH_STATUS {...}" with the first refusal's body; "BENCH_JSON {...}" (requests,
-- latency percentiles) comes from bench/wrk_report.lua, loaded from $WRK_BENCH_DIR.
dofile(os.getenv("WRK_BENCH_DIR") .. "/wrk_report.lua")

local mode = os.getenv("WRK_MODE")
local path = os.getenv("WRK_PATH")
local content_type = os.getenv("WRK_CONTENT_TYPE") or "application/json"
local refresh_body = os.getenv("WRK_REFRESH_BODY") or ""
local token_field = os.getenv("WRK_TOKEN_FIELD") or ""
local token_pattern = '"' .. token_field .. '"%s*:%s*"([^"]+)"'
local items = {}
local counter = 0
statuses = {}
first_refusal = ""
exhausted = 0

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
local function forwarded_for(n)
  return string.format("%d.%d.%d.%d", ip_base + (tid or 0), math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256)
end

-- "{token}" replaced by plain concatenation (no gsub: tokens and forms may hold '%').
local token_at = refresh_body:find("{token}", 1, true)
local function with_token(token)
  return refresh_body:sub(1, token_at - 1) .. token .. refresh_body:sub(token_at + 7)
end

function request()
  counter = counter + 1
  if mode == "login" then
    return wrk.format("POST", path, {["Content-Type"] = content_type,
                                     ["X-Forwarded-For"] = forwarded_for(counter)},
                      items[(counter - 1) % #items + 1])
  elseif mode == "refresh" then
    local token = table.remove(items)
    if not token then
      exhausted = exhausted + 1
      token = "exhausted"
    end
    return wrk.format("POST", path, {["Content-Type"] = content_type}, with_token(token))
  else
    return wrk.format("GET", path,
                      {["Authorization"] = "Bearer " .. items[(counter - 1) % #items + 1]})
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 then
    if first_refusal == "" then first_refusal = status .. " " .. body:sub(1, 300) end
    return
  end
  if mode == "refresh" then
    local token = body:match(token_pattern)
    if token then
      table.insert(items, token)
    elseif first_refusal == "" then
      first_refusal = "200 without a token: " .. body:sub(1, 300)
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
  local total, refusal, empty = {}, "", 0
  for _, t in ipairs(threads) do
    empty = empty + t:get("exhausted")
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
    if refusal == "" then refusal = t:get("first_refusal"):gsub("[\r\n]", " ") end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%d": %d', status, n)) end
  io.write(string.format('BENCH_STATUS {"statuses": {%s}, "first_refusal": %q, ' ..
                         '"sent_without_token": %d}\n', table.concat(parts, ", "), refusal,
                         empty))
end
