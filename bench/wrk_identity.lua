-- wrk script for bench/identity_bench.py. $WRK_MODE picks the workload; $WRK_LINES_FILE holds
-- one input per line, dealt out to wrk's threads (line i goes to thread i mod $WRK_THREADS):
--   login    lines "EMAIL PASSWORD": POST /v1/auth/login, accounts round-robin, and a distinct
--            X-Forwarded-For per request (ledgerd runs with --trusted-proxy 127.0.0.1), so the
--            per-IP limit (5 per 15 min) never answers 429. Thread t sends from (10+t).x.y.z.
--   refresh  lines "REFRESH_TOKEN": POST /v1/auth/refresh. A refresh token is good once
--            (rotation), so each thread keeps a pool of unused tokens: request() takes one,
--            response() puts back the new one from the reply. A connection has one request in
--            flight, so one token per connection should do, but with exactly that many a thread
--            sometimes found its pool empty without having lost a token (wrk's callback order;
--            not investigated): identity_bench.py gives two per connection. A request sent
--            without a token is answered 401 and counted in "sent_without_token".
--   me       lines "ACCESS_TOKEN": GET /v1/me with the tokens round-robin as Bearer.
-- The "BENCH_JSON" summary line comes from wrk_report.lua (loaded from $WRK_BENCH_DIR).
dofile(os.getenv("WRK_BENCH_DIR") .. "/wrk_report.lua")

local mode = os.getenv("WRK_MODE")
local items = {}
local counter = 0

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

local function forwarded_for(n)
  return string.format("%d.%d.%d.%d", 10 + tid, math.floor(n / 65536) % 256,
                       math.floor(n / 256) % 256, n % 256)
end

function request()
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
local function count(status, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 and first_refusal == "" then first_refusal = body:sub(1, 300) end
end

if mode == "login" then
  function response(status, headers, body) count(status, body) end
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
  for _, t in ipairs(threads) do
    empty = empty + t:get("exhausted")
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
    if refusal == "" then refusal = t:get("first_refusal"):gsub("[\r\n]", " ") end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%d": %d', status, n)) end
  io.write(string.format('BENCH_STATUS {"statuses": {%s}, "first_refusal": %q, ' ..
                         '"sent_without_token": %d}\n', table.concat(parts, ", "), refusal, empty))
end
