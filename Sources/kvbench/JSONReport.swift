import Foundation

/// A benchmark result: a table for people, JSON for machines (`--json`).
protocol BenchmarkReport: Encodable {
    func table() -> String
}

extension BenchmarkReport {
    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
