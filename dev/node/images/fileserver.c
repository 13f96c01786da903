/* A tiny read-only HTTP/1.0 file server for the node test tier (the "model store" pod): serves the
 * regular files under ROOT for GET/HEAD, answers /healthz and /readyz, nothing else. One forked child per
 * connection, 10 s socket timeouts. Written for this project; static:  gcc -Os -static -o fileserver fileserver.c
 *
 * It also plays the hostile tenant of the node test (issue 26), with bodies that announce no length and
 * are made on the fly (nothing on disk): /hostile/junk-1g (1 GiB, then close), /hostile/endless (until
 * the client goes), and /metrics (64 MiB of exposition-looking lines, for a "canary" pod running this
 * image: the operator's scrape must not hold it).
 *   fileserver [PORT [ROOT]]     (defaults 8080 /models; env PORT overrides the argument, env ROOT the default) */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static void reply(int fd, const char *status, const char *body) {
  char h[256];
  int n = snprintf(h, sizeof h, "HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s", status, strlen(body), body);
  if (write(fd, h, n) < 0) {}
}

/* `total` bytes (0: without end) of `line` repeated, after a header that announces no length. */
static void junk(int fd, const char *line, unsigned long long total) {
  const char *h = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
  if (write(fd, h, strlen(h)) < 0) return;
  static char buf[65536];
  size_t n = strlen(line), fill = 0;
  while (fill + n <= sizeof buf) { memcpy(buf + fill, line, n); fill += n; }
  for (unsigned long long sent = 0; total == 0 || sent < total;) {
    size_t chunk = total && total - sent < fill ? (size_t)(total - sent) : fill;
    ssize_t w = write(fd, buf, chunk);
    if (w <= 0) return;
    sent += (unsigned long long)w;
  }
}

static int safe(const char *p) { /* absolute, [A-Za-z0-9._/-], no "..": nothing outside ROOT */
  if (p[0] != '/' || strstr(p, "..")) return 0;
  for (; *p; p++)
    if (!(*p == '/' || *p == '.' || *p == '_' || *p == '-' || (*p >= '0' && *p <= '9') ||
          (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) return 0;
  return 1;
}

static void serve(int c, const char *root) {
  char req[2048], method[8], path[1024], full[1400];
  size_t got = 0;
  while (got < sizeof req - 1) { /* read until the end of the request line */
    ssize_t n = read(c, req + got, sizeof req - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
    req[got] = 0;
    if (strchr(req, '\n')) break;
  }
  req[got] = 0;
  if (sscanf(req, "%7s %1023s", method, path) != 2) { reply(c, "400 Bad Request", "bad request\n"); return; }
  char *q = strchr(path, '?');
  if (q) *q = 0;
  int head = !strcmp(method, "HEAD");
  printf("%s %s\n", method, path);
  fflush(stdout);
  if (!head && strcmp(method, "GET")) { reply(c, "405 Method Not Allowed", "GET or HEAD only\n"); return; }
  if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz")) { reply(c, "200 OK", "ok\n"); return; }
  if (!head && !strcmp(path, "/hostile/junk-1g")) { junk(c, "junk junk junk\n", 1ULL << 30); return; }
  if (!head && !strcmp(path, "/hostile/endless")) { junk(c, "more and more\n", 0); return; }
  if (!head && !strcmp(path, "/metrics")) {
    junk(c, "predictor_predictions_total{model=\"x\",outcome=\"agreed\"} 1\n", 64ULL << 20);
    return;
  }
  if (!safe(path)) { reply(c, "404 Not Found", "not found\n"); return; }
  snprintf(full, sizeof full, "%s%s", root, path);
  int f = open(full, O_RDONLY);
  struct stat st;
  if (f < 0 || fstat(f, &st) || !S_ISREG(st.st_mode)) { reply(c, "404 Not Found", "not found\n"); return; }
  char h[256];
  int n = snprintf(h, sizeof h, "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Length: %lld\r\nConnection: close\r\n\r\n", (long long)st.st_size);
  if (write(c, h, n) != n || head) return;
  char buf[65536];
  ssize_t r;
  while ((r = read(f, buf, sizeof buf)) > 0)
    for (ssize_t off = 0; off < r;) {
      ssize_t w = write(c, buf + off, r - off);
      if (w <= 0) return;
      off += w;
    }
}

/* As PID 1 of a container, a signal without a handler is ignored: exit on SIGTERM/SIGINT ourselves,
 * or every pod deletion waits for the whole grace period. */
static void on_stop(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
  /* PORT, when set, wins over the arguments: a Predictor's pod (a hostile tenant naming this image) sets
   * PORT to spec.port and appends "serve" to the image's own arguments; the model-store pod sets none. */
  const char *port = getenv("PORT") ? getenv("PORT") : argc > 1 ? argv[1] : "8080";
  const char *root = argc > 2 ? argv[2] : getenv("ROOT") ? getenv("ROOT") : "/models";
  signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  int s = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
  int v6 = s >= 0;
  if (!v6) s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) { perror("socket"); return 1; }
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(port)), .sin6_addr = in6addr_any};
    rc = bind(s, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port)), .sin_addr.s_addr = INADDR_ANY};
    rc = bind(s, (struct sockaddr *)&a, sizeof a);
  }
  if (rc || listen(s, 64)) { perror("bind/listen"); return 1; }
  printf("fileserver: serving %s on port %s\n", root, port);
  fflush(stdout);
  struct timeval tv = {.tv_sec = 10};
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) { if (errno == EINTR) continue; perror("accept"); continue; }
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    pid_t p = fork();
    if (p == 0) { close(s); serve(c, root); shutdown(c, SHUT_WR); close(c); _exit(0); }
    close(c);
  }
}
