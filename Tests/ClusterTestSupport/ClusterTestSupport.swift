// ClusterTestSupport: helpers for testing the kvraft cluster end to end.
//
//   History.swift                — Operation, HistoryRecorder (thread-safe, monotonic clock)
//   KVModel.swift                — the per-key sequential model, with interned states
//   LinearizabilityChecker.swift — per-key Wing–Gong–Lowe search with memoization
//   AppendsCheck.swift           — exactly-once / per-client order check for append workloads
