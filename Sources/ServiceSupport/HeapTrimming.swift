import CMalloc

/// Gives memory malloc holds but no longer uses back to the system.
///
/// glibc raises its trim threshold after large blocks are freed (our 1 MiB frames, multi-MiB
/// snapshots), so a process that once needed a lot keeps it: kvd's leader sat at 75 MB after a
/// few load runs, 32 MB after a trim. Called after the big transient allocations (taking or
/// restoring a snapshot, compacting the log), which happen every few seconds at most.
public enum HeapTrimming {
    /// Returns whether any memory was released.
    @discardableResult
    public static func releaseFreeMemory() -> Bool {
        malloc_trim(0) != 0
    }
}
