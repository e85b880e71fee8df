import ArgumentParser
import EventLoop

/// `--tls-cert FILE --tls-key FILE --tls-ca FILE`: all three turn every TCP link of the
/// process into mutually authenticated TLS (1.2 at least); none keeps plaintext.
public struct TLSOptions: ParsableArguments, Sendable {
    @Option(help: "PEM certificate (chain) this process presents on every TCP link; with --tls-key and --tls-ca turns on mutual TLS.")
    public var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    public var tlsKey: String?

    @Option(help: "PEM CA certificate every peer's certificate must chain to.")
    public var tlsCa: String?

    public init() {}

    public func validate() throws {
        let given = [tlsCert, tlsKey, tlsCa].compactMap { $0 }.count
        guard given == 0 || given == 3 else {
            throw ValidationError("--tls-cert, --tls-key and --tls-ca go together: give all three or none")
        }
    }

    /// The files, when TLS is on.
    public var files: TLSFiles? {
        guard let tlsCert, let tlsKey, let tlsCa else { return nil }
        return TLSFiles(certificate: tlsCert, key: tlsKey, ca: tlsCa)
    }
}
