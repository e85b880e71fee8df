import ArgumentParser
import Foundation
import KVClient
import Wire

/// `kvctl member …`: membership changes through any gateway (it finds the leader).
struct MemberCommandGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "List, add, promote, remove or replace cluster members (one change at a time).",
        subcommands: [MemberList.self, MemberAdd.self, MemberPromote.self, MemberRemove.self, MemberReplace.self])
    @ParentCommand var root: Kvctl
}

/// Sends one member command, retrying while the leader says to (a change in flight, a leader
/// just elected, a handover) until `options.timeoutMs`.
func memberCall(_ command: MemberCommand, options: GatewayOptions) throws -> KvResponse {
    let clerk = try options.clerk()
    let deadline = Date().addingTimeInterval(options.timeoutMs / 1000)
    while true {
        let response: KvResponse
        do {
            response = try clerk.callOnce(KvRequest(op: .member, member: command))
        } catch {
            if Date() < deadline { Thread.sleep(forTimeInterval: 0.1); continue }
            throw fail("gateway unreachable: \(error)", code: KvctlExit.unavailable)
        }
        switch response.status {
        case .ok:
            return response
        case .badRequest where response.message.contains("retry") && Date() < deadline:
            Thread.sleep(forTimeInterval: 0.1)
        case .badRequest:
            throw fail("refused: \(response.message)", code: KvctlExit.badRequest)
        default:
            if Date() < deadline { Thread.sleep(forTimeInterval: 0.1); continue }
            throw fail("no answer: \(response.status) \(response.message)", code: KvctlExit.unavailable)
        }
    }
}

func printMembers(_ members: [MemberInfo]) {
    let header = ["ID", "RAFT", "KVD", "ROLE", "MATCH", "REACHABLE"]
    var rows = [header]
    for member in members.sorted(by: { $0.id < $1.id }) {
        let role = member.voter ? "voter" : (member.autoPromote ? "learner (auto-promote)" : "learner")
        rows.append([String(member.id), member.raftAddress.isEmpty ? "-" : member.raftAddress,
                     member.kvdAddress.isEmpty ? "-" : member.kvdAddress, role, String(member.matchIndex),
                     member.reachable ? "yes" : "no"])
    }
    let widths = header.indices.map { column in rows.map { $0[column].count }.max()! }
    for row in rows {
        print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

/// Waits until the leader lists the configuration made at `index` or later as committed and
/// `condition` holds for it.
func awaitMembers(options: GatewayOptions, what: String, _ condition: ([MemberInfo]) -> Bool) throws -> [MemberInfo] {
    let deadline = Date().addingTimeInterval(options.timeoutMs / 1000)
    while true {
        let members = try memberCall(MemberCommand(action: .list), options: options).members
        if condition(members) { return members }
        guard Date() < deadline else { throw fail("timed out waiting for \(what)", code: KvctlExit.unavailable) }
        Thread.sleep(forTimeInterval: 0.1)
    }
}

struct MemberList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show every member: id, raft and kvd address, voter or learner, match index, reachable.")
    @ParentCommand var group: MemberCommandGroup
    func run() throws {
        printMembers(try memberCall(MemberCommand(action: .list), options: group.root.options).members)
    }
}

struct MemberAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add node ID as a learner; it is promoted to voter once caught up (unless --learner). Start it with raftd --join.")
    @ParentCommand var group: MemberCommandGroup
    @Argument(help: "The new node's id.") var id: UInt64
    @Option(help: "Its raftd peer address, HOST:PORT.") var raft: String
    @Option(help: "Its kvd client address, HOST:PORT (gateways learn it).") var kvd: String = ""
    @Flag(help: "Keep it a learner until `kvctl member promote`.") var learner = false

    func run() throws {
        let response = try memberCall(MemberCommand(action: .add, id: id, raftAddress: raft, kvdAddress: kvd, learnerOnly: learner),
                                      options: group.root.options)
        print("added node \(id) as a learner at log index \(response.configurationIndex)\(learner ? "" : "; it becomes a voter once caught up")")
    }
}

struct MemberPromote: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "promote", abstract: "Make learner ID a voter.")
    @ParentCommand var group: MemberCommandGroup
    @Argument(help: "The learner's id.") var id: UInt64
    func run() throws {
        let response = try memberCall(MemberCommand(action: .promote, id: id), options: group.root.options)
        print("promoted node \(id) at log index \(response.configurationIndex)")
    }
}

struct MemberRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove node ID (refused if fewer reachable voters than a majority would remain, unless --force). A removed leader hands over first.")
    @ParentCommand var group: MemberCommandGroup
    @Argument(help: "The member's id.") var id: UInt64
    @Flag(help: "Remove even if it leaves fewer reachable voters than a majority.") var force = false
    func run() throws {
        let response = try memberCall(MemberCommand(action: .remove, id: id, force: force), options: group.root.options)
        print("removed node \(id) at log index \(response.configurationIndex)")
    }
}

struct MemberReplace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace",
        abstract: "Replace OLD-ID by NEW-ID: add NEW as a learner, wait until it caught up, promote it, remove OLD.")
    @ParentCommand var group: MemberCommandGroup
    @Argument(help: "The member to replace.") var oldID: UInt64
    @Argument(help: "The new node's id (start it with raftd --join).") var newID: UInt64
    @Option(help: "The new node's raftd peer address, HOST:PORT.") var raft: String
    @Option(help: "The new node's kvd client address, HOST:PORT.") var kvd: String = ""

    func run() throws {
        let options = group.root.options
        let current = try memberCall(MemberCommand(action: .list), options: options).members
        if !current.contains(where: { $0.id == newID }) {
            _ = try memberCall(MemberCommand(action: .add, id: newID, raftAddress: raft, kvdAddress: kvd, learnerOnly: true), options: options)
            print("added node \(newID) as a learner")
        }
        // Caught up: within a few entries of the most advanced member.
        _ = try awaitMembers(options: options, what: "node \(newID) to catch up") { members in
            guard let new = members.first(where: { $0.id == newID }), new.reachable else { return false }
            let top = members.map(\.matchIndex).max() ?? 0
            return new.voter || new.matchIndex + 64 >= top
        }
        if current.first(where: { $0.id == newID })?.voter != true {
            _ = try memberCall(MemberCommand(action: .promote, id: newID), options: options)
            print("promoted node \(newID)")
        }
        let response = try memberCall(MemberCommand(action: .remove, id: oldID, force: true), options: options)
        print("removed node \(oldID) at log index \(response.configurationIndex)")
    }
}
