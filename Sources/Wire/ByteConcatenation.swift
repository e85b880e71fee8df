extension Array where Element == [UInt8] {
    /// The arrays' bytes back to back in one array, allocated once (for values kept in pieces).
    public func concatenated() -> [UInt8] {
        var joined: [UInt8] = []
        joined.reserveCapacity(reduce(0) { $0 + $1.count })
        for piece in self { joined.append(contentsOf: piece) }
        return joined
    }
}
