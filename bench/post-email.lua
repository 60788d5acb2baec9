-- wrk script: POST /email with a small raw email, authenticated as the user demo.
-- The password comes from the environment (BENCH_PASSWORD).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"to_email":"user@example.com","subject":"Your code","body":"Your code is 123456.\\nIt expires in 30 minutes."}'
