import CProtobufC

extension KvRequest: WireMessage {
    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        let m = arena.make(Kvraft__KvRequest.self)
        kvraft__kv_request__init(m)
        m.pointee.request_id = requestID
        m.pointee.client_id = clientID
        m.pointee.seq = seq
        m.pointee.op = Kvraft__Op(rawValue: .init(truncatingIfNeeded: op.rawValue))
        m.pointee.key = arena.bytes(key)
        m.pointee.value = arena.bytes(value)
        m.pointee.watch_leadership = watchLeadership ? 1 : 0
        m.pointee.member = member?.makeC(in: arena)
        appendPacked(m, size: kvraft__kv_request__get_packed_size, pack: kvraft__kv_request__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "KvRequest", unpack: { kvraft__kv_request__unpack(nil, $0, $1) },
                                free: { kvraft__kv_request__free_unpacked($0, nil) }) { m in
            KvRequest(requestID: m.pointee.request_id, clientID: m.pointee.client_id, seq: m.pointee.seq,
                      op: Op(rawValue: Int32(truncatingIfNeeded: m.pointee.op.rawValue)),
                      key: CValue.bytes(m.pointee.key), value: CValue.bytes(m.pointee.value),
                      watchLeadership: m.pointee.watch_leadership != 0,
                      member: m.pointee.member.map { MemberCommand(c: $0) })
        }
    }
}

extension NodeStatus: WireMessage {
    func makeC(in arena: CArena) -> UnsafeMutablePointer<Kvraft__NodeStatus> {
        let m = arena.make(Kvraft__NodeStatus.self)
        kvraft__node_status__init(m)
        m.pointee.node_id = nodeID
        m.pointee.reachable = reachable ? 1 : 0
        if !role.isEmpty { m.pointee.role = arena.string(role) }
        m.pointee.term = term
        m.pointee.leader_id = leaderID
        m.pointee.commit_index = commitIndex
        m.pointee.applied_index = appliedIndex
        if !address.isEmpty { m.pointee.address = arena.string(address) }
        if !error.isEmpty { m.pointee.error = arena.string(error) }
        m.pointee.fsyncs = fsyncs
        m.pointee.last_index = lastIndex
        m.pointee.snapshot_index = snapshotIndex
        if !readMode.isEmpty { m.pointee.read_mode = arena.string(readMode) }
        (m.pointee.n_members, m.pointee.members) = MemberInfo.makeCList(members, in: arena)
        return m
    }

    init(c m: UnsafeMutablePointer<Kvraft__NodeStatus>) {
        defer { members = MemberInfo.fromCList(m.pointee.n_members, m.pointee.members) }
        self.init(nodeID: m.pointee.node_id, reachable: m.pointee.reachable != 0, role: CValue.string(m.pointee.role),
                  term: m.pointee.term, leaderID: m.pointee.leader_id, commitIndex: m.pointee.commit_index,
                  appliedIndex: m.pointee.applied_index, address: CValue.string(m.pointee.address),
                  error: CValue.string(m.pointee.error), fsyncs: m.pointee.fsyncs, lastIndex: m.pointee.last_index,
                  snapshotIndex: m.pointee.snapshot_index, readMode: CValue.string(m.pointee.read_mode))
    }

    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        appendPacked(makeC(in: arena), size: kvraft__node_status__get_packed_size, pack: kvraft__node_status__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "NodeStatus", unpack: { kvraft__node_status__unpack(nil, $0, $1) },
                                free: { kvraft__node_status__free_unpacked($0, nil) }) { NodeStatus(c: $0) }
    }
}

extension KvResponse: WireMessage {
    public func append(to out: inout [UInt8], framed: Bool) {
        let arena = CArena()
        let m = arena.make(Kvraft__KvResponse.self)
        kvraft__kv_response__init(m)
        m.pointee.request_id = requestID
        m.pointee.status = Kvraft__Status(rawValue: .init(truncatingIfNeeded: status.rawValue))
        m.pointee.value = arena.bytes(value)
        if !leaderHint.isEmpty { m.pointee.leader_hint = arena.string(leaderHint) }
        if !message.isEmpty { m.pointee.message = arena.string(message) }
        if !nodes.isEmpty {
            let list = arena.pointerArray(of: Kvraft__NodeStatus.self, count: nodes.count)
            for (i, node) in nodes.enumerated() { list[i] = node.makeC(in: arena) }
            m.pointee.n_nodes = nodes.count
            m.pointee.nodes = list
        }
        m.pointee.leader_term = leaderTerm
        (m.pointee.n_members, m.pointee.members) = MemberInfo.makeCList(members, in: arena)
        m.pointee.configuration_index = configurationIndex
        appendPacked(m, size: kvraft__kv_response__get_packed_size, pack: kvraft__kv_response__pack, framed: framed, to: &out)
    }

    public init(serialized body: ArraySlice<UInt8>) throws(WireError) {
        self = try withUnpacked(body, name: "KvResponse", unpack: { kvraft__kv_response__unpack(nil, $0, $1) },
                                free: { kvraft__kv_response__free_unpacked($0, nil) }) { m in
            var nodes: [NodeStatus] = []
            for i in 0..<m.pointee.n_nodes {
                if let node = m.pointee.nodes[i] { nodes.append(NodeStatus(c: node)) }
            }
            var response = KvResponse(requestID: m.pointee.request_id,
                              status: Status(rawValue: Int32(truncatingIfNeeded: m.pointee.status.rawValue)),
                              value: CValue.bytes(m.pointee.value), leaderHint: CValue.string(m.pointee.leader_hint),
                              message: CValue.string(m.pointee.message), nodes: nodes, leaderTerm: m.pointee.leader_term)
            response.members = MemberInfo.fromCList(m.pointee.n_members, m.pointee.members)
            response.configurationIndex = m.pointee.configuration_index
            return response
        }
    }
}
