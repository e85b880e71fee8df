import ClusterTestSupport
import EventLoop
import Foundation
import Wire

/// One real kvd process between a stand-in raftd and a client, all on one loop the test
/// drives: the stand-in records what kvd proposes and commits a proposal only when the test
/// says so, so tests can watch what kvd holds back and when it lets go.
final class KvdHarness {
    let loop = EventLoop()
    private let directory: URL
    private let kvdPort: Int
    private let process = Process()
    private var listener: Listener?
    private var raftLink: Connection?
    private var raftDecoder = FrameDecoder(frameLimit: 64 << 20)
    private var client: Connection?
    private var clientDecoder = FrameDecoder()
    private var nextIndex: UInt64 = 1
    private(set) var helloReceived = false
    /// Every proposal kvd sent, in order.
    private(set) var proposals: [Proposal] = []
    /// Every hello kvd sent (one per connection to the stand-in).
    private(set) var hellos = 0
    /// Snapshots kvd sent (asked with `requestSnapshot`), by index.
    private(set) var snapshots: [UInt64: [UInt8]] = [:]
    private var snapshotIn = SnapshotAssembler()
    /// Every snapshot refusal kvd sent, in order.
    private(set) var rejections: [(index: UInt64, reason: String, lastApplied: UInt64)] = []
    /// Every read id kvd asked a read index for, in order.
    private(set) var readRequests: [UInt64] = []
    /// Answer read requests at once with "use the log", as raftd `--read-mode log` does, so
    /// Gets are proposed like writes; false: the test answers them (`send(.readResults…)`).
    var answersReadsWithLog = true
    /// Replies to the requests `put` sent, by request id.
    private(set) var replies: [UInt64: KvResponse] = [:]

    /// Starts kvd with `arguments` added to its own, and waits until it has said hello.
    init(arguments: [String]) throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvd-harness-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let socket = directory.appendingPathComponent("raft.sock").path
        let ports = try PortReservation(count: 1)
        kvdPort = ports.ports[0]
        ports.release()
        listener = try Listener(loop: loop, endpoint: .unix(path: socket)) { [unowned self] connection in
            attach(connection)
        }
        process.executableURL = try LocalCluster.binaryDirectory().appendingPathComponent("kvd")
        process.arguments = ["--id", "1", "--listen", "127.0.0.1:\(kvdPort)", "--raft-socket", socket] + arguments
        let log = directory.appendingPathComponent("kvd.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        guard run(timeoutMs: 10_000, until: { helloReceived }) else {
            shutdown()
            throw HarnessError(description: "kvd did not connect to the stand-in raftd: \(kvdLog)")
        }
    }

    struct HarnessError: Error, CustomStringConvertible {
        let description: String
    }

    var kvdLog: String {
        (try? String(contentsOf: directory.appendingPathComponent("kvd.log"), encoding: .utf8)) ?? ""
    }

    private func attach(_ connection: Connection) {
        raftLink = connection
        connection.onRead = { [unowned self] connection in
            raftDecoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
            while let frame = try? raftDecoder.nextFrame(), let message = try? KvdToRaft(serialized: frame) {
                switch message {
                case .hello:
                    helloReceived = true
                    hellos += 1
                case let .snapshot(chunk):
                    if let complete = try? snapshotIn.add(chunk) { snapshots[complete.index] = complete.data }
                case let .propose(list): proposals.append(contentsOf: list)
                case let .snapshotRejected(index, reason, lastApplied): rejections.append((index, reason, lastApplied))
                case .statusQuery, .memberCommand: break
                case let .read(ids):
                    readRequests.append(contentsOf: ids)
                    if answersReadsWithLog {
                        _ = connection.write(RaftToKvd.readResults(ids.map { ReadResult(readID: $0, outcome: .useLog) }).framed())
                    }
                }
            }
        }
    }

    /// Tells kvd it leads term 1.
    func lead() {
        _ = raftLink?.write(RaftToKvd.leadership(Leadership(term: 1, leaderID: 1, isLeader: true)).framed())
    }

    /// Appends `proposal` at the next index of term 1 (or at `position`), tells kvd where, and commits it.
    func commit(_ proposal: Proposal, at position: UInt64? = nil) {
        let index = position ?? nextIndex
        nextIndex = index + 1
        _ = raftLink?.write(RaftToKvd.results([ProposeResult(proposalID: proposal.proposalID, accepted: true, index: index, term: 1)]).framed())
        _ = raftLink?.write(RaftToKvd.committed([LogEntry(term: 1, index: index, data: proposal.data)]).framed())
    }

    /// Sends kvd one message, as raftd would.
    func send(_ message: RaftToKvd) {
        _ = raftLink?.write(message.framed())
    }

    /// Asks kvd for a snapshot of its state (it arrives in `snapshots`).
    func requestSnapshot() {
        send(.snapshotRequest(appliedAtLeast: 0))
    }

    /// Sends kvd a client request; its reply lands in `replies` under its request id.
    func request(_ request: KvRequest) throws {
        try connectClient()
        _ = client?.write(request.framed())
    }

    /// How many commands a proposal carries.
    func commandCount(_ proposal: Proposal) throws -> Int {
        try CommandBatch(serialized: proposal.data[...]).commands.count
    }

    /// Sends kvd a Put from a session of its own (client id = request id, seq 1).
    func put(_ requestID: UInt64) throws {
        let request = KvRequest(requestID: requestID, clientID: requestID, seq: 1, op: .put,
                                key: Array("key-\(requestID)".utf8), value: Array("value \(requestID)".utf8))
        try self.request(request)
    }

    private func connectClient() throws {
        if client == nil {
            let connection = try Connection.connect(loop: loop, to: .tcp(host: "127.0.0.1", port: kvdPort))
            connection.onRead = { [unowned self] connection in
                clientDecoder.withAppendableBuffer { _ = connection.readAvailable(appendingTo: &$0) }
                while let frame = try? clientDecoder.nextFrame(), let reply = try? KvResponse(serialized: frame) {
                    replies[reply.requestID] = reply
                }
            }
            client = connection
        }
    }

    /// Runs the loop until `done` holds or `timeoutMs` passes; returns whether `done` held.
    @discardableResult
    func run(timeoutMs: Double, until done: () -> Bool = { false }) -> Bool {
        let deadline = EventLoop.monotonicNanos() + UInt64(timeoutMs * 1_000_000)
        let wakeUp = Timer(loop: loop, repeating: true) {}
        wakeUp.schedule(milliseconds: 5)
        defer { wakeUp.cancel() }
        while !done() {
            if EventLoop.monotonicNanos() >= deadline { return false }
            loop.runOnce(blocking: true)
        }
        return true
    }

    /// Stops kvd (by its PID) and removes the temp dir.
    func shutdown() {
        client?.close()
        raftLink?.close()
        listener?.close()
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
