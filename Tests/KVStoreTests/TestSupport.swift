@testable import KVStore
import Wire

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A state machine plus the log position and log time the next batch gets, so tests read
/// like a transcript of the log.
struct Replica {
    var machine: KVStateMachine
    var index: UInt64 = 0
    var nowMs: UInt64 = 1_000

    init(_ machine: KVStateMachine = KVStateMachine()) { self.machine = machine }

    /// Applies one batch stamped `timestampMs` (default: `nowMs`).
    @discardableResult
    mutating func run(_ commands: [Command], atMs timestampMs: UInt64? = nil) -> [CommandResult] {
        index += 1
        let results = machine.apply(batch: CommandBatch(timestampMs: timestampMs ?? nowMs, commands: commands), index: index)
        precondition(results.count == commands.count)
        return results
    }

    @discardableResult
    mutating func run(_ command: Command, atMs timestampMs: UInt64? = nil) -> CommandResult {
        run([command], atMs: timestampMs)[0]
    }

    mutating func noop() {
        index += 1
        machine.applyNoop(index: index)
    }
}

func get(_ key: String, client: UInt64 = 0, seq: UInt64 = 0) -> Command {
    Command(clientID: client, seq: seq, op: .get, key: bytes(key))
}

func put(_ key: String, _ value: String, client: UInt64 = 0, seq: UInt64 = 0) -> Command {
    Command(clientID: client, seq: seq, op: .put, key: bytes(key), value: bytes(value))
}

func append(_ key: String, _ value: String, client: UInt64 = 0, seq: UInt64 = 0) -> Command {
    Command(clientID: client, seq: seq, op: .append, key: bytes(key), value: bytes(value))
}

func delete(_ key: String, client: UInt64 = 0, seq: UInt64 = 0) -> Command {
    Command(clientID: client, seq: seq, op: .delete, key: bytes(key))
}

func ok(_ value: String = "") -> CommandResult { CommandResult(status: .ok, value: bytes(value)) }

/// SplitMix64: a small seeded generator, so a failing seed replays exactly.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
