-- wrk script: GET /api/server as a customer owning 10 servers (JWT verified every time).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("OSPAB_TOKEN")

done = function(summary, latency, requests)
  io.write(string.format("OSPAB %d %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
