#if canImport(Glibc)
import Glibc
#endif

/// ISO 8601 UTC text for log lines and messages, without Foundation (the server processes do
/// not link it).
enum UTCTimestamp {
    /// `2026-12-06T10:20:43Z`; with `millis`, `2026-12-06T10:20:43.123Z`.
    static func text(seconds: Int, millis: Int? = nil) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let text = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        return millis.map { text + "." + pad(Int32($0), 3) + "Z" } ?? text + "Z"
    }

    /// Seconds since 1970 (UTC), now.
    static var nowSeconds: Int { Int(time(nil)) }
}
