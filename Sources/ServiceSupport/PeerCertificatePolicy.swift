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

    /// A raftd link whose certificate does not name the node its messages come from.
    public static func claimRefusal(_ certificate: PeerCertificate?, claimedNode id: UInt64) -> String? {
        guard let certificate else { return nil }
        if certificate.names("node-\(id)") { return nil }
        return "messages claim node \(id), but its certificate names \(certificate.names.joined(separator: ", "))"
    }
}
