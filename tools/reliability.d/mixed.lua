-- wrk script for tools/reliability's memory scenario: half the requests
-- carry a valid route cookie, a quarter none (new clients), a quarter a
-- garbage cookie of random length (up to 2 KB).
local ids = {}
for id in string.gmatch(os.getenv("REL_IDS") or "", "%x+") do
    ids[#ids + 1] = id
end
local name = os.getenv("REL_COOKIE") or "ROUTEID"
local chars = "abcdefghijklmnopqrstuvwxyzABCDEF0123456789;= \"\t"
local n = 0

function init(args)
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
    n = n + 1
    local r = math.random(100)
    local headers = {}
    if r <= 50 and #ids > 0 then
        headers["Cookie"] = "a=1; " .. name .. "=" .. ids[math.random(#ids)]
    elseif r > 75 then
        local len = math.random(1, 2048)
        local t = {}
        for i = 1, len do
            local k = math.random(#chars)
            t[i] = chars:sub(k, k)
        end
        headers["Cookie"] = name .. "=" .. table.concat(t) .. "; z=" .. n
    end
    return wrk.format("GET", "/app/?m=" .. r, headers)
end
