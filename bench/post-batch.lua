-- wrk script: POST /emails/batch with 100 small raw emails (the shape of post-email.lua's),
-- authenticated as the user demo (the Authorization header comes from bench/enqueue.py).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local one = '{"to_email":"user@example.com","subject":"Your code","body":"Your code is 123456.\\nIt expires in 30 minutes."}'
local items = {}
for i = 1, 100 do items[i] = one end
wrk.body = "[" .. table.concat(items, ",") .. "]"
