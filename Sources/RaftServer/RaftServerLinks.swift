import EventLoop
import Logging
import Raft
import RaftStorage
import Wire

/// What `RaftDriver` asks of raftd's shell, done on libevent: the peer transport, the kvd
/// link, and the calls back into the server for shutdown and failure.
final class RaftServerLinks: RaftDriverIO {
    private let transport: PeerTransport
    private let identities: PeerIdentities
    private let nodeID: UInt64
    private let logger: Logger
    /// The attached kvd connection, nil while none is.
    var kvd: ApplySession?
    var onShutdownFinished: (() -> Void)?
    var onPersistFailed: ((any Error) -> Void)?

    init(transport: PeerTransport, identities: PeerIdentities, nodeID: UInt64, logger: Logger) {
        self.transport = transport
        self.identities = identities
        self.nodeID = nodeID
        self.logger = logger
    }

    func sendToPeers(_ messages: [Message], flushNow: Bool) {
        transport.send(messages, flushNow: flushNow)
    }

    var kvdIsWritable: Bool { kvd?.connection.isWritable ?? false }

    func sendToKvd(_ messages: [RaftToKvd]) {
        guard let kvd else { return }
        var frame: [UInt8] = []
        for message in messages { message.appendFrame(to: &frame) }
        kvd.connection.write(frame)
    }

    func closeKvd() {
        let session = kvd
        kvd = nil
        session?.connection.close()
    }

    func configurationChanged(_ configuration: Configuration) {
        transport.updateAddresses(Self.raftAddresses(configuration))
        // Ids no longer members may come back later on a fresh data dir under the same id.
        let departed = identities.known.keys.filter { configuration.member($0) == nil && $0 != nodeID }
        if !departed.isEmpty, !configuration.ids.isEmpty {
            do { try identities.forget(Array(departed)) } catch {
                logger.error("cannot forget removed nodes' data-dir ids: \(error)")
            }
        }
    }

    func shutdownFinished() { onShutdownFinished?() }

    func persistFailed(_ error: any Error) { onPersistFailed?(error) }

    /// Raft addresses of the configuration's members that carry one.
    static func raftAddresses(_ configuration: Configuration) -> [UInt64: Endpoint] {
        var addresses: [UInt64: Endpoint] = [:]
        for member in configuration.members where !member.raftAddress.isEmpty {
            if let endpoint = Endpoint.parseHostPort(member.raftAddress) { addresses[member.id] = endpoint }
        }
        return addresses
    }
}
