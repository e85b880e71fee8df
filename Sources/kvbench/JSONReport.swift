import Foundation

/// A benchmark result that prints itself as JSON for machines (`--json`).
protocol JSONReport: Encodable {}

extension JSONReport {
    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
