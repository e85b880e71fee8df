import CProtobufC

/// One client command as replicated in the log.
public struct Command: Hashable, Sendable {
    public var clientID: UInt64
    public var seq: UInt64
    public var op: Op
    public var key: [UInt8]
    public var value: [UInt8]

    public init(clientID: UInt64, seq: UInt64, op: Op, key: [UInt8], value: [UInt8] = []) {
        self.clientID = clientID
        self.seq = seq
        self.op = op
        self.key = key
        self.value = value
    }
}

/// The payload of a normal log entry: commands batched by the leader's kvd, stamped with
/// its wall clock so every replica expires idle sessions identically. It may also set the
/// session table's limits (`setLimits`), which then hold from this entry on, its own
/// commands included.
public struct CommandBatch: Hashable, Sendable {
    public var timestampMs: UInt64
    public var commands: [Command]
    public var setLimits: SessionLimits?

    public init(timestampMs: UInt64, commands: [Command], setLimits: SessionLimits? = nil) {
        self.timestampMs = timestampMs
        self.commands = commands
        self.setLimits = setLimits
    }
}

extension CommandBatch: WireMessage {
    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        let m = arena.make(Kvraft__Apply__CommandBatch.self)
        kvraft__apply__command_batch__init(m)
        m.pointee.timestamp_ms = timestampMs
        let list = arena.pointerArray(of: Kvraft__Apply__Command.self, count: commands.count)
        for (i, command) in commands.enumerated() {
            let c = arena.make(Kvraft__Apply__Command.self)
            kvraft__apply__command__init(c)
            c.pointee.client_id = command.clientID
            c.pointee.seq = command.seq
            c.pointee.op = Kvraft__Op(rawValue: .init(truncatingIfNeeded: command.op.rawValue))
            c.pointee.key = arena.bytes(command.key)
            c.pointee.value = arena.bytes(command.value)
            list[i] = c
        }
        m.pointee.n_commands = commands.count
        m.pointee.commands = list
        m.pointee.set_limits = setLimits?.makeC(in: arena)
        appendPacked(m, size: kvraft__apply__command_batch__get_packed_size, pack: kvraft__apply__command_batch__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "CommandBatch", unpack: { kvraft__apply__command_batch__unpack(nil, $0, $1) },
                                free: { kvraft__apply__command_batch__free_unpacked($0, nil) }) { m throws(WireError) in
            var commands: [Command] = []
            commands.reserveCapacity(m.pointee.n_commands)
            for i in 0..<m.pointee.n_commands {
                guard let c = m.pointee.commands[i] else { throw .invalid("command \(i) is missing") }
                commands.append(Command(clientID: c.pointee.client_id, seq: c.pointee.seq,
                                        op: Op(rawValue: Int32(truncatingIfNeeded: c.pointee.op.rawValue)),
                                        key: CValue.bytes(c.pointee.key), value: CValue.bytes(c.pointee.value)))
            }
            return CommandBatch(timestampMs: m.pointee.timestamp_ms, commands: commands,
                                setLimits: m.pointee.set_limits.map { SessionLimits(c: $0) })
        }
    }
}
