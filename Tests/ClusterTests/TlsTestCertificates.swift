import EventLoop
import Foundation

/// Certificates for the TLS tests, made with the openssl CLI in a temp dir: the cluster's
/// (`scripts/certs`), a second CA's, and an expired client certificate signed by the
/// cluster's CA (`openssl ca` with dates in the past: `x509 -days` cannot go negative).
struct TlsTestCertificates {
    let directory: URL
    let other: URL

    init(nodes: Int) throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvraft-certs-\(UUID().uuidString.prefix(8))")
        directory = root.appendingPathComponent("cluster")
        other = root.appendingPathComponent("other")
        let script = TlsTestCertificates.packageRoot.appendingPathComponent("scripts/certs").path
        try TlsTestCertificates.run([script, directory.path, "--nodes", "\(nodes)"])
        try TlsTestCertificates.run([script, other.path, "--nodes", "1"])
        try makeExpiredClient()
    }

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Files for `name` (`node-1`, `gateway`, `client`, `client-expired`) trusting the cluster's CA.
    func files(_ name: String) -> TLSFiles {
        TLSFiles(certificate: path("\(name).pem"), key: path("\(name)-key.pem"), ca: path("ca.pem"))
    }

    /// The other CA's client certificate, presented to the cluster (whose CA it trusts).
    var foreignClient: TLSFiles {
        TLSFiles(certificate: other.appendingPathComponent("client.pem").path,
                 key: other.appendingPathComponent("client-key.pem").path, ca: path("ca.pem"))
    }

    /// The flags that give a process `name`'s certificate.
    func flags(_ name: String) -> [String] {
        ["--tls-cert", path("\(name).pem"), "--tls-key", path("\(name)-key.pem"), "--tls-ca", path("ca.pem")]
    }

    /// Puts `name`'s certificate and key at `slot`'s paths, each by a rename: how deployment
    /// tools rotate files in place (never a half-written file at the path).
    func install(_ name: String, as slot: String) throws {
        for suffix in [".pem", "-key.pem"] {
            let staged = path("\(slot)\(suffix).new")
            try? FileManager.default.removeItem(atPath: staged)
            try FileManager.default.copyItem(atPath: path("\(name)\(suffix)"), toPath: staged)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: staged)
            guard rename(staged, path("\(slot)\(suffix)")) == 0 else { throw CocoaError(.fileWriteUnknown) }
        }
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory.deletingLastPathComponent())
    }

    private func makeExpiredClient() throws {
        let ca = directory.appendingPathComponent("expired-ca")
        try FileManager.default.createDirectory(at: ca, withIntermediateDirectories: true)
        try Data().write(to: ca.appendingPathComponent("index.txt"))
        try Data("01\n".utf8).write(to: ca.appendingPathComponent("serial"))
        let config = """
        [ ca ]
        default_ca = test
        [ test ]
        database = \(ca.path)/index.txt
        new_certs_dir = \(ca.path)
        serial = \(ca.path)/serial
        default_md = sha256
        policy = any
        [ any ]
        commonName = supplied
        """
        try Data(config.utf8).write(to: ca.appendingPathComponent("ca.cnf"))
        try TlsTestCertificates.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path("client-expired-key.pem")])
        try TlsTestCertificates.run(["openssl", "req", "-new", "-key", path("client-expired-key.pem"), "-subj", "/CN=client-expired",
                                     "-out", ca.appendingPathComponent("expired.csr").path])
        try TlsTestCertificates.run(["openssl", "ca", "-batch", "-notext", "-config", ca.appendingPathComponent("ca.cnf").path,
                                     "-cert", path("ca.pem"), "-keyfile", path("ca-key.pem"),
                                     "-in", ca.appendingPathComponent("expired.csr").path, "-out", path("client-expired.pem"),
                                     "-startdate", "20200101000000Z", "-enddate", "20200201000000Z"])
    }

    private static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw EventLoopError("\(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }
}
