import EventLoop

/// Who may connect to what, by the names in a peer's certificate (issued by `scripts/certs`:
/// `node-N` for node N's raftd and kvd, `gateway` for gateways, anything else for clients).
public enum PeerCertificatePolicy {
    /// raftd's peer port: node certificates only (which node is checked per message).
    public static func nodesOnly(_ certificate: PeerCertificate) -> String? {
        certificate.nodeIDs.isEmpty ? "only node certificates (node-N) may speak Raft" : nil
    }

    /// kvd's client port: gateways and nodes only.
    public static func gatewaysAndNodes(_ certificate: PeerCertificate) -> String? {
        certificate.names("gateway") || !certificate.nodeIDs.isEmpty ? nil : "only gateway or node certificates may reach kvd"
    }

    /// The gateway's client port: any certificate the CA signed, or, with `--allowed-client-names`,
    /// only one that names one of `allowed` (like etcd's `--client-cert-allowed-hostname`).
    public static func clients(allowed: [String]?) -> (PeerCertificate) -> String? {
        guard let allowed, !allowed.isEmpty else { return { _ in nil } }
        return { certificate in
            allowed.contains(where: certificate.names) ? nil
                : "only client certificates naming \(allowed.joined(separator: " or ")) may connect; this one names \(distinct(certificate.names).joined(separator: ", "))"
        }
    }

    /// Names in order, each once (a certificate names itself as SAN and as CN).
    private static func distinct(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    /// A raftd link whose certificate does not name the node its messages come from.
    public static func claimRefusal(_ certificate: PeerCertificate?, claimedNode id: UInt64) -> String? {
        guard let certificate else { return nil }
        if certificate.names("node-\(id)") { return nil }
        return "messages claim node \(id), but its certificate names \(certificate.names.joined(separator: ", "))"
    }
}
