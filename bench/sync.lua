-- wrk script: POST /api/vps/sync "update" of one existing VPS, the billing site's most
-- frequent call. OSPAB_SYNC_KEY and OSPAB_VPS_ID come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("OSPAB_SYNC_KEY")
wrk.body = '{"action":"update","vps":{"id":' .. (os.getenv("OSPAB_VPS_ID") or "1") ..
           ',"status":"running"}}'

done = function(summary, latency, requests)
  io.write(string.format("OSPAB %d %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
