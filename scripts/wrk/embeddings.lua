-- wrk script: POST one cached input to /v1/embeddings. ENCODING (float|base64) from the
-- environment. Usage: ENCODING=base64 wrk -s scripts/wrk/embeddings.lua http://127.0.0.1:8077
local encoding = os.getenv("ENCODING") or "float"
wrk.method = "POST"
wrk.path = "/v1/embeddings"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"input":"pagekeeper benchmark: one cached sentence of ordinary length","model":"lexical","encoding_format":"' .. encoding .. '"}'
