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

