import Raft

/// The last events of a simulation, kept cheaply (values, not strings) and rendered on failure so a
/// failing test reads like a transcript of what happened.
struct Transcript {
    enum Event {
        case deliver(Message)
        case role(UInt64, SoftState)
        case crash(UInt64, String)
        case restart(UInt64)
        case propose(UInt64, [UInt8], ProposeOutcome)
        case note(String)
    }

    static let capacity = 400
    private var events: [(step: Int, event: Event)] = []
    private var start = 0

    mutating func record(_ step: Int, _ event: Event) {
        if events.count < Self.capacity {
            events.append((step, event))
        } else {
            events[start] = (step, event)
            start = (start + 1) % Self.capacity
        }
    }

    func render() -> String {
        var text = ""
        for offset in 0..<events.count {
            let (step, event) = events[(start + offset) % events.count]
            let tick = step / SimulatedCluster.stepsPerTick
            text += "  [tick \(tick) step \(step)] "
            switch event {
            case .deliver(let message): text += "deliver \(message)"
            case .role(let id, let soft): text += "node \(id) is \(soft.role) in term \(soft.term), leader \(soft.leader)"
            case .crash(let id, let reason): text += "CRASH node \(id) \(reason)"
            case .restart(let id): text += "RESTART node \(id)"
            case .propose(let id, let data, let outcome): text += "propose \(data) at \(id): \(outcome)"
            case .note(let note): text += note
            }
            text += "\n"
        }
        return text
    }
}
