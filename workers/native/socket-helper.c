/* Socket helpers Node.js lacks: a listening socket created outside libuv (so that the main thread
 * owns it without accepting on it) and dup(2), so that each worker thread holds its own descriptor
 * of the same listening socket and can stop and restart accepting without closing it for others;
 * and SO_ORIGINAL_DST, where a connection redirected by iptables was going. */
#define _GNU_SOURCE
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netfilter_ipv4.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_value errnoValue;
  napi_create_int32(env, err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return NULL;
}

/* listenTcp(host: string, port: number, backlog: number): number (fd) */
static napi_value listen_tcp(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) { napi_throw_type_error(env, NULL, "listenTcp(host, port, backlog)"); return NULL; }
  char host[128];
  size_t hostLen = 0;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &hostLen) != napi_ok) {
    napi_throw_type_error(env, NULL, "host must be a string"); return NULL;
  }
  int32_t port = 0, backlog = 0;
  napi_get_value_int32(env, argv[1], &port);
  napi_get_value_int32(env, argv[2], &backlog);
  if (port < 0 || port > 65535) { napi_throw_range_error(env, NULL, "port out of range"); return NULL; }

  struct sockaddr_storage ss;
  socklen_t len;
  int family;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    family = AF_INET; in4->sin_family = AF_INET; in4->sin_port = htons((uint16_t)port); len = sizeof *in4;
  } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    family = AF_INET6; in6->sin6_family = AF_INET6; in6->sin6_port = htons((uint16_t)port); len = sizeof *in6;
  } else {
    napi_throw_type_error(env, NULL, "host must be an IPv4 or IPv6 address literal"); return NULL;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    int e = errno; close(fd); return throw_errno(env, "setsockopt(SO_REUSEADDR)", e);
  }
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) { int e = errno; close(fd); return throw_errno(env, "bind", e); }
  if (listen(fd, backlog > 0 ? backlog : 511) != 0) { int e = errno; close(fd); return throw_errno(env, "listen", e); }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* dupFd(fd: number): number -- the copy is close-on-exec and non-blocking like the original */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "dupFd(fd)"); return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return throw_errno(env, "dup", errno);
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

/* closeFd(fd: number): void -- for descriptors that no libuv handle owns */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "closeFd(fd)"); return NULL;
  }
  if (close(fd) != 0) return throw_errno(env, "close", errno);
  return NULL;
}

/* localPort(fd: number): number -- the port a listening socket is bound to (for port 0) */
static napi_value local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "localPort(fd)"); return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return throw_errno(env, "getsockname", errno);
  int port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  napi_value result;
  napi_create_int32(env, port, &result);
  return result;
}

/* originalDst(fd: number): [address: string, port: number] | null -- where a connection redirected by
 * iptables (REDIRECT/DNAT) was going: SO_ORIGINAL_DST from conntrack. null when the kernel knows no
 * original destination (no conntrack entry: not redirected, or conntrack not loaded). For a connection
 * that was not redirected but is tracked, it is the socket's own local address. */
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDst(fd)"); return NULL;
  }
  struct sockaddr_storage local;
  socklen_t llen = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) return throw_errno(env, "getsockname", errno);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  int rc = local.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len)
                                       : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len);
  napi_value result;
  if (rc != 0) {
    if (errno == ENOENT || errno == ENOPROTOOPT || errno == EOPNOTSUPP) { napi_get_null(env, &result); return result; }
    return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  }
  char addr[INET6_ADDRSTRLEN];
  int port;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
    port = ntohs(in6->sin6_port);
  } else {
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &in4->sin_addr, addr, sizeof addr);
    port = ntohs(in4->sin_port);
  }
  napi_value a, p;
  napi_create_array_with_length(env, 2, &result);
  napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &a);
  napi_create_int32(env, port, &p);
  napi_set_element(env, result, 0, a);
  napi_set_element(env, result, 1, p);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"listenTcp", NULL, listen_tcp, NULL, NULL, NULL, napi_default, NULL},
    {"dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_default, NULL},
    {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
    {"localPort", NULL, local_port, NULL, NULL, NULL, napi_default, NULL},
    {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
