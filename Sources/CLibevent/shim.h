#ifndef KVRAFT_CLIBEVENT_SHIM_H
#define KVRAFT_CLIBEVENT_SHIM_H
// System headers first: without them event2/ declares fd_set in a way that conflicts
// with Dispatch's when tests are built.
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/un.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/util.h>
#endif
