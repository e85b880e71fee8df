/// SplitMix64: the core's only source of randomness (gateway session ids), seeded by the shell
/// from the system and by the simulation from its seed, so a simulated run replays exactly.
struct GatewayRandom {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A new session's client id: never 0 (0 means "no session").
    mutating func clientID() -> UInt64 {
        max(1, next())
    }
}
