import EventLoop
import Logging
import Metrics

/// The TLS identity of a server process (raftd, kvd, the gateway). It takes rotated files up
/// for new links (looking when a link starts, and every 5 s), logs each reload (or why changed
/// files did not load) once, and exports when the certificate it presents expires,
/// `kvraft_tls_certificate_expiry_timestamp_seconds`, so operators alert before it does. Set
/// at load and at each reload: nothing per request.
public enum ServingTLS {
    /// Below this much validity left, loading the certificate also logs a warning.
    static let warnBelowSeconds: Int64 = 14 * 86_400

    /// How often the files are looked at while no link starts.
    static let checkInterval = Duration.seconds(5)

    public static func context(files: TLSFiles, loop: EventLoop, logger: Logger) throws -> TLSContext {
        let context = try TLSContext(files: files)
        let expiry = Gauge(label: "kvraft_tls_certificate_expiry_timestamp_seconds")
        // Given the expiry rather than reading it from `context`: the context keeps this
        // closure (`onReload`), so capturing the context here would keep it, and its periodic
        // check, alive forever.
        func loaded(_ what: String, notAfter: Int64?) {
            guard let notAfter else { return logger.notice("\(what)") }
            expiry.record(notAfter)
            let until = UTCTimestamp.text(seconds: Int(notAfter))
            let left = notAfter - Int64(UTCTimestamp.nowSeconds)
            if left < warnBelowSeconds {
                logger.warning("\(what); the certificate expires at \(until) (\(max(0, left) / 3600) h from now): replace it (see Rotating certificates)")
            } else {
                logger.notice("\(what); the certificate is valid until \(until)")
            }
        }
        loaded("TLS on with certificate \(files.certificate)", notAfter: context.certificateNotAfter)
        context.reloadsChangedFiles = true
        context.checkFilesPeriodically(every: checkInterval, on: loop)
        context.onReload = { [weak context] result in
            switch result {
            case .success(let what): loaded(what, notAfter: context?.certificateNotAfter)
            case .failure(let error): logger.error("\(error)")
            }
        }
        return context
    }
}
