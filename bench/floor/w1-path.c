// The hardware floor of W1's path on this machine: the same processes, sockets, messages and
// fsyncs as one sequential Put through kvraft, with no work in between. Seven processes:
//
//   client -tcp-> gateway -tcp-> kvd -unix-> leader -tcp-> follower x2 (pwrite + fdatasync)
//   leader: pwrite + fdatasync of its own, then waits for one follower's ack
//   leader -unix-> kvd -tcp-> gateway -tcp-> client
//
// Each process blocks in epoll_wait for its next message, as an event loop does. Message
// sizes are those of a 16-byte key, 256-byte value Put. WAL files are prepared like raftd's.
// With --raft-only the client talks to the leader's apply socket directly (kvbench raft).
//
//   cc -O2 -o w1-path bench/floor/w1-path.c && ./w1-path [--raft-only] [--ops N] [--dir DIR]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { REQUEST = 299, PROPOSAL = 318, APPEND = 346, WAL_RECORD = 368, ACK = 27, APPLY = 320, RESPONSE = 8 };

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void tcp_pair(int fds[2]) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1)) die("listen");
    getsockname(listener, (struct sockaddr *)&address, &length);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fds[0], (struct sockaddr *)&address, sizeof address)) die("connect");
    fds[1] = accept(listener, NULL, NULL);
    close(listener);
    int one = 1;
    for (int i = 0; i < 2; i++) setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void unix_pair(int fds[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) die("socketpair");
}

/// Blocks in epoll_wait until `fd` is readable, then reads exactly `count` bytes.
static void receive(int fd, char *buffer, int count) {
    static int epoll_of[4096];
    if (!epoll_of[fd]) {
        epoll_of[fd] = epoll_create1(0);
        struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(epoll_of[fd], EPOLL_CTL_ADD, fd, &event);
    }
    for (int got = 0; got < count;) {
        struct epoll_event ready;
        epoll_wait(epoll_of[fd], &ready, 1, -1);
        ssize_t n = read(fd, buffer + got, count - got);
        if (n <= 0) exit(0);  // the other end is gone: the run is over
        got += n;
    }
}

static void send_bytes(int fd, const char *buffer, int count) {
    if (write(fd, buffer, count) != count) exit(0);
}

/// A WAL as raftd keeps one: 64 MiB fallocated, and zeros written over the part the run
/// will use (raftd writes zeros ahead of its data), so fdatasync flushes data only.
static int open_wal(const char *directory, const char *name, long used) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die(path);
    if (fallocate(fd, 0, 0, 64 << 20)) die("fallocate");
    static char zeros[1 << 16];
    for (long offset = 0; offset < used && offset < (64 << 20); offset += sizeof zeros) {
        if (pwrite(fd, zeros, sizeof zeros, offset) != sizeof zeros) die("zero-fill");
    }
    fsync(fd);
    unlink(path);
    return fd;
}

/// fork(), with the child killed when this process dies (Ctrl-C included): the children hold
/// copies of every socket, so they would never see their peers close.
static pid_t spawn(void) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) exit(0);  // the parent is already gone
    }
    return pid;
}

static void forwarder(int from_client, int to_server, int request, int forwarded, int reply, int replied) {
    char buffer[512] = {0};
    for (;;) {
        receive(from_client, buffer, request);
        send_bytes(to_server, buffer, forwarded);
        receive(to_server, buffer, reply);
        send_bytes(from_client, buffer, replied);
    }
}

static void follower(int leader, int wal) {
    char buffer[512] = {0};
    for (off_t offset = 0;; offset += WAL_RECORD) {
        receive(leader, buffer, APPEND);
        if (pwrite(wal, buffer, WAL_RECORD, offset) != WAL_RECORD || fdatasync(wal)) die("follower wal");
        send_bytes(leader, buffer, ACK);
    }
}

static void leader(int kvd, const int followers[2], int wal) {
    char buffer[512] = {0};
    int owed[2] = {0, 0};
    int poller = epoll_create1(0);
    for (int i = 0; i < 2; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(poller, EPOLL_CTL_ADD, followers[i], &event);
    }
    for (off_t offset = 0;; offset += WAL_RECORD) {
        receive(kvd, buffer, PROPOSAL);
        for (int i = 0; i < 2; i++) send_bytes(followers[i], buffer, APPEND), owed[i]++;
        if (pwrite(wal, buffer, WAL_RECORD, offset) != WAL_RECORD || fdatasync(wal)) die("leader wal");
        // Committed once one follower acknowledged too; the other's ack is read when it comes.
        for (int acknowledged = 0; !acknowledged;) {
            struct epoll_event ready[2];
            int n = epoll_wait(poller, ready, 2, -1);
            for (int r = 0; r < n; r++) {
                int i = ready[r].data.u32;
                while (owed[i] > 0) {
                    ssize_t got = recv(followers[i], buffer, ACK, MSG_DONTWAIT);
                    if (got != ACK) break;
                    owed[i]--;
                    acknowledged = 1;
                }
            }
        }
        send_bytes(kvd, buffer, APPLY);
    }
}

int main(int argc, char **argv) {
    int raft_only = 0, ops = 3000;
    const char *directory = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--raft-only")) raft_only = 1;
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc) ops = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc) directory = argv[++i];
        else { fprintf(stderr, "usage: %s [--raft-only] [--ops N] [--dir DIR]\n", argv[0]); return 64; }
    }
    int client_gateway[2], gateway_kvd[2], kvd_leader[2], to_follower[2][2];
    tcp_pair(client_gateway);
    tcp_pair(gateway_kvd);
    unix_pair(kvd_leader);
    tcp_pair(to_follower[0]);
    tcp_pair(to_follower[1]);
    setpgid(0, 0);
    pid_t children[5];
    int count = 0;
    if (!raft_only) {
        if (!(children[count++] = spawn())) forwarder(client_gateway[1], gateway_kvd[0], REQUEST, REQUEST, RESPONSE, RESPONSE);
        if (!(children[count++] = spawn())) forwarder(gateway_kvd[1], kvd_leader[0], REQUEST, PROPOSAL, APPLY, RESPONSE);
    }
    for (int f = 0; f < 2; f++) {
        char name[32];
        snprintf(name, sizeof name, "w1-path-%d-follower%d.wal", (int)getpid(), f);
        int wal = open_wal(directory, name, (long)ops * WAL_RECORD);
        if (!(children[count++] = spawn())) follower(to_follower[f][1], wal);
        close(wal);
    }
    char name[32];
    snprintf(name, sizeof name, "w1-path-%d-leader.wal", (int)getpid());
    int wal = open_wal(directory, name, (long)ops * WAL_RECORD);
    int leader_ends[2] = {to_follower[0][0], to_follower[1][0]};
    if (!(children[count++] = spawn())) leader(kvd_leader[1], leader_ends, wal);

    char buffer[512] = {0};
    int to_cluster = raft_only ? kvd_leader[0] : client_gateway[0];
    int request = raft_only ? PROPOSAL : REQUEST, reply = raft_only ? APPLY : RESPONSE;
    double started = now_seconds();
    for (int i = 0; i < ops; i++) {
        send_bytes(to_cluster, buffer, request);
        receive(to_cluster, buffer, reply);
    }
    double elapsed = now_seconds() - started;
    printf("%s: %d sequential ops, %.0f us/op = %.0f ops/s\n", raft_only ? "raft only (4 hops)" : "W1 path (8 hops)",
           ops, elapsed / ops * 1e6, ops / elapsed);
    fflush(stdout);
    for (int i = 0; i < count; i++) kill(children[i], SIGKILL);
    while (wait(NULL) > 0) {}
    return 0;
}
