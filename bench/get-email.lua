-- wrk script: GET /email/{request_id} of an id picked at random from the file named by
-- BENCH_IDS (one id a line), authenticated as the user demo (the header comes from the caller).
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
math.randomseed(os.time())

request = function()
    return wrk.format("GET", "/email/" .. ids[math.random(#ids)])
end
