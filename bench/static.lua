-- wrk script: GET the static JSON file, the reference point measured in the same run.
done = function(summary, latency, requests)
  io.write(string.format("OSPAB %d %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
