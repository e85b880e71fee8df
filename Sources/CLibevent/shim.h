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
#include <event2/http.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

// OpenSSL's setters below are macros, which Swift does not import.
static inline int kvraft_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline int kvraft_ssl_ctx_set_max_tls13(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
}

static inline long kvraft_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

// When the certificate loaded into `ctx` stops being valid (its notAfter), in seconds since
// 1970 UTC; -1 when there is none. Counted from now (ASN1_TIME_diff): no timegm needed.
static inline long long kvraft_ssl_ctx_not_after(SSL_CTX *ctx) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (cert == NULL) return -1;
    const ASN1_TIME *when = X509_get0_notAfter(cert);
    int days = 0, seconds = 0;
    if (when == NULL || ASN1_TIME_diff(&days, &seconds, NULL, when) != 1) return -1;
    return (long long)time(NULL) + (long long)days * 86400 + seconds;
}

// The names a peer certificate claims: its DNS subjectAltNames, then its subject CN, each
// followed by a newline, written into `out` (truncated to `capacity`-1 bytes, NUL-ended).
// Returns the number of names, or -1 when the peer sent no certificate.
static inline int kvraft_ssl_peer_names(SSL *ssl, char *out, size_t capacity) {
    if (capacity == 0) return -1;
    out[0] = 0;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) return -1;
    size_t used = 0;
    int count = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
            const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
            if (name->type != GEN_DNS) continue;
            const unsigned char *data = ASN1_STRING_get0_data(name->d.dNSName);
            int length = ASN1_STRING_length(name->d.dNSName);
            if (length <= 0 || used + (size_t)length + 1 >= capacity) continue;
            if (memchr(data, 0, (size_t)length) != NULL) continue;
            memcpy(out + used, data, (size_t)length);
            used += (size_t)length;
            out[used++] = '\n';
            count++;
        }
        GENERAL_NAMES_free(names);
    }
    char common[256];
    int length = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, common, sizeof common);
    if (length > 0 && used + (size_t)length + 1 < capacity) {
        memcpy(out + used, common, (size_t)length);
        used += (size_t)length;
        out[used++] = '\n';
        count++;
    }
    out[used] = 0;
    X509_free(cert);
    return count;
}
#endif
