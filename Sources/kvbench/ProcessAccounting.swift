import EventLoop
#if canImport(Glibc)
import Glibc
#endif

/// Reads a small /proc file whole (Foundation's file APIs trust st_size, which is 0 there).
func readProcFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// CPU time and memory of one cluster process, from /proc.
struct ProcessSnapshot {
    var cpuSeconds: Double
    var rssKB: Int
    var hwmKB: Int

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func read(pid: Int32) -> ProcessSnapshot? {
        guard let stat = readProcFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3, so utime (14) and stime (15) are at 11 and 12.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        var rss = 0
        var hwm = 0
        if let status = readProcFile("/proc/\(pid)/status") {
            for line in status.split(separator: "\n") {
                if line.hasPrefix("VmRSS:") { rss = kilobytes(line) }
                if line.hasPrefix("VmHWM:") { hwm = kilobytes(line) }
            }
        }
        return ProcessSnapshot(cpuSeconds: (utime + stime) / ticksPerSecond, rssKB: rss, hwmKB: hwm)
    }

    private static func kilobytes(_ line: Substring) -> Int {
        Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
}

/// Follows the listed processes over a run: CPU seconds spent between `begin()` and
/// `end()`, and the largest resident set seen (sampled) and reported by the kernel (VmHWM).
final class ProcessAccounting {
    struct Tracked {
        let pid: Int32
        let name: String
        var start: ProcessSnapshot?
        var last: ProcessSnapshot?
        var maxRssKB = 0
        var gone = false
    }

    private(set) var tracked: [Tracked]

    init(pids: [Int32]) {
        tracked = pids.map { pid in
            let comm = readProcFile("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init) ?? "?"
            return Tracked(pid: pid, name: comm)
        }
    }

    func begin() {
        for i in tracked.indices {
            tracked[i].start = ProcessSnapshot.read(pid: tracked[i].pid)
            tracked[i].last = tracked[i].start
            tracked[i].maxRssKB = tracked[i].start?.rssKB ?? 0
            tracked[i].gone = tracked[i].start == nil
        }
    }

    /// Called about once a second, and at the end.
    func sample() {
        for i in tracked.indices where !tracked[i].gone {
            guard let now = ProcessSnapshot.read(pid: tracked[i].pid) else {
                tracked[i].gone = true
                continue
            }
            tracked[i].last = now
            tracked[i].maxRssKB = max(tracked[i].maxRssKB, now.rssKB)
        }
    }

    func report() -> [ProcessUsage] {
        tracked.map { t in
            let cpu = (t.last?.cpuSeconds ?? 0) - (t.start?.cpuSeconds ?? 0)
            return ProcessUsage(pid: Int(t.pid), name: t.name, cpuSeconds: cpu,
                                peakRssMB: Double(t.maxRssKB) / 1024, hwmMB: Double(t.last?.hwmKB ?? 0) / 1024,
                                exitedDuringRun: t.gone)
        }
    }

    /// This process's own CPU seconds (user + system).
    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}

/// Finds the cluster behind the targets by name (raftd, kvd, kvgateway), keeping only the
/// processes that belong to it — other clusters may run on the same machine: gateways that
/// listen on a target, the kvds they (or the targets) name, and the raftds whose apply
/// socket those kvds use. With no match at all, every process of those names is taken.
enum ClusterProcessFinder {
    struct Candidate {
        let pid: Int32
        let name: String
        let args: [String]

        func flag(_ name: String) -> String? {
            for (i, arg) in args.enumerated() {
                if arg == "--\(name)", i + 1 < args.count { return args[i + 1] }
                if arg.hasPrefix("--\(name)=") { return String(arg.dropFirst(name.count + 3)) }
            }
            return nil
        }
    }

    static func find(targets: [BenchTarget]) -> [Int32] {
        let candidates = listCandidates()
        var kvdAddresses = Set(targets.map(\.endpoint.description))
        var chosen: [Int32] = []
        for gateway in candidates where gateway.name == "kvgateway" {
            guard let listen = gateway.flag("listen"), kvdAddresses.contains(normalized(listen)) else { continue }
            chosen.append(gateway.pid)
            for item in (gateway.flag("nodes") ?? "").split(separator: ",") {
                if let address = item.split(separator: "=", maxSplits: 1).last { kvdAddresses.insert(normalized(String(address))) }
            }
        }
        var raftSockets = Set<String>()
        for kvd in candidates where kvd.name == "kvd" {
            guard let listen = kvd.flag("listen"), kvdAddresses.contains(normalized(listen)) else { continue }
            chosen.append(kvd.pid)
            if let socket = kvd.flag("raft-socket") { raftSockets.insert(socket) }
        }
        for raftd in candidates where raftd.name == "raftd" {
            if let socket = raftd.flag("apply-socket"), raftSockets.contains(socket) { chosen.append(raftd.pid) }
        }
        if chosen.isEmpty { return candidates.map(\.pid) }
        return chosen
    }

    private static func normalized(_ address: String) -> String {
        Endpoint.parseHostPort(address)?.description ?? address
    }

    private static func listCandidates() -> [Candidate] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var found: [Candidate] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard let pid = Int32(name) else { continue }
            guard let comm = readProcFile("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init),
                  ["raftd", "kvd", "kvgateway"].contains(comm) else { continue }
            let args = (readProcFile("/proc/\(pid)/cmdline") ?? "").split(separator: "\0").map(String.init)
            found.append(Candidate(pid: pid, name: comm, args: args))
        }
        return found.sorted { $0.pid < $1.pid }
    }
}
