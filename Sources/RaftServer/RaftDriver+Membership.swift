import EventLoop
import Raft
import Wire

/// raftd's side of membership changes: members' commands from kvd (`kvctl member …`) become
/// core proposals, the configuration in force goes to the shell (whom to dial), and a node
/// learns when it was removed.
extension RaftDriver {
    /// The configuration in force changed (a change appended, truncated or installed).
    func configurationChanged(_ configuration: Configuration) {
        logger.notice("configuration now \(configuration)", metadata: ["index": "\(node.configurationIndex)"])
        io.configurationChanged(configuration)
        let removed = !configuration.ids.isEmpty && configuration.member(config.nodeID) == nil
        // A joining node first sees configurations from before its addition: not a removal.
        if !removed && !configuration.ids.isEmpty { hasBeenMember = true }
        if removed && !removedFromCluster && hasBeenMember {
            logger.warning("this node (\(config.nodeID)) was removed from the cluster: it no longer votes or campaigns; stop it, or add it again (kvctl member add) with a fresh data dir")
        }
        removedFromCluster = removed
    }

    /// This node was a member and the configuration in force no longer names it: it votes,
    /// campaigns and serves no more (a joiner not yet added is not "removed").
    public var isRemovedFromCluster: Bool { removedFromCluster && hasBeenMember }

    /// The configuration as `kvctl member list` shows it: with match and reachability as this
    /// node knows them (a leader knows every member's; others only their own).
    func memberList() -> [MemberInfo] {
        let progress = Dictionary(node.memberProgress.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let status = node.status
        return node.configuration.members.map { member in
            let known = progress[member.id]
            let isSelf = member.id == config.nodeID
            return MemberInfo(id: member.id, raftAddress: member.raftAddress, kvdAddress: member.kvdAddress,
                              voter: member.isVoter, autoPromote: member.autoPromote,
                              matchIndex: isSelf ? status.lastIndex : known?.match ?? 0,
                              reachable: isSelf || (known?.recentlyActive ?? false))
        }
    }

    /// Runs a member command; only the leader changes anything (others name the leader).
    func memberCommand(_ command: MemberCommand) -> MemberAnswer {
        let status = node.status
        guard status.role == .leader else {
            return MemberAnswer(ok: false, error: ConfigChangeError.notLeader(leader: status.leader).description,
                                members: memberList(), configurationIndex: node.configurationIndex, leaderID: status.leader)
        }
        let change: ConfigChange
        switch command.action {
        case .list:
            return MemberAnswer(ok: true, members: memberList(), configurationIndex: node.configurationIndex, leaderID: config.nodeID)
        case .add:
            guard command.id != 0, Endpoint.parseHostPort(command.raftAddress) != nil else {
                return MemberAnswer(ok: false, error: "member add needs a non-zero id and --raft HOST:PORT", members: memberList())
            }
            change = .addLearner(Member(id: command.id, role: .learner, autoPromote: !command.learnerOnly,
                                        raftAddress: command.raftAddress, kvdAddress: command.kvdAddress))
        case .promote:
            change = .promote(command.id)
        case .remove:
            if !command.force, let problem = removalProblem(command.id) {
                return MemberAnswer(ok: false, error: problem, members: memberList(), configurationIndex: node.configurationIndex)
            }
            change = .remove(command.id)
        }
        switch node.proposeConfigChange(change) {
        case .success(let at):
            logger.notice("proposed membership change \(command.action) of node \(command.id)", metadata: ["index": "\(at.index)"])
            return MemberAnswer(ok: true, members: memberList(), configurationIndex: at.index, leaderID: config.nodeID)
        case .failure(let error):
            return MemberAnswer(ok: false, error: error.description, members: memberList(),
                                configurationIndex: node.configurationIndex, leaderID: config.nodeID)
        }
    }

    /// Why removing `id` would leave fewer reachable voters than a majority of the new voters.
    private func removalProblem(_ id: UInt64) -> String? {
        let configuration = node.configuration
        guard configuration.isVoter(id) else { return nil }
        let reachable = Set(memberList().filter { $0.voter && $0.reachable }.map(\.id))
        let remaining = configuration.voters.filter { $0 != id }
        let needed = remaining.count / 2 + 1
        let live = remaining.filter { reachable.contains($0) }.count
        guard live < needed else { return nil }
        return "removing node \(id) would leave \(live) reachable voter(s) of \(remaining.count), fewer than the \(needed) a majority needs; bring nodes back first, or use --force"
    }
}
