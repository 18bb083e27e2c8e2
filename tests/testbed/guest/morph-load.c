/*
 * morph-load: the workload generator that runs inside every test-bed guest.
 *
 * It polls the host's control endpoint (http://<host>:<port>/targets, served by busybox httpd on the
 * host side of the VM's tap) every 500 ms and drives four independent loads toward the targets it finds:
 *
 *   cpu=<percent>       busy/sleep duty cycle in 10 ms periods on the guest's vCPU
 *   disk_read=<B/s>     O_DIRECT reads from /dev/vda (bypass the guest page cache, so every byte reaches
 *   disk_write=<B/s>    the host block layer and `virsh domstats --block`); reads cycle over the first
 *                       64 MiB of the disk (allocated on the host), writes over its second half
 *   net_tx=<B/s>        UDP datagrams to the host tap address (the host drops them; libvirt counts them)
 *   net_rx=<B/s>        paced reads of an endless HTTP download (/blob) from the host
 *   mem_dirty=<B/s>     writes to one word of each 4 KiB page of a 64 MiB buffer, cycling: the page
 *                       dirtying rate a live migration has to keep up with
 *
 * While any target is non-zero it prints its own running totals to the console once a second
 * ("counters t=... cpu_ms=... rd=... wr=... tx=... rx=... dirty=... polls=... errors=..."), so a test can
 * see that the load went on across a pause or a migration (t is the guest's monotonic seconds). The
 * guest has no agent of Morph: these totals are the generator's own work, never measurements of the VM.
 * Built statically by scripts/testbed into the initramfs; not part of the CMake build.
 * Kernel command line: morph.host=<ip> [morph.port=<port>] [morph.vm=<name>].
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { kTargetCpu, kTargetDiskRead, kTargetDiskWrite, kTargetNetTx, kTargetNetRx, kTargetMemDirty, kTargetCount };
static const char* const kTargetNames[kTargetCount] = {"cpu",    "disk_read", "disk_write",
                                                       "net_tx", "net_rx",    "mem_dirty"};
static _Atomic uint64_t g_target[kTargetCount];
/* Running totals of the work done, per target (cpu: busy ns; the others: bytes), plus polls and errors. */
static _Atomic uint64_t g_done[kTargetCount];
static _Atomic uint64_t g_polls, g_errors;

static char g_host[64] = "169.254.0.1";
static int g_port = 8080;
static char g_vm[128] = "?";
static FILE* g_console;

#define kDiskReadSpan (64ull << 20) /* the host allocates this much of the disk for reads */
#define kIoAlign 4096u
#define kMaxIoChunk (256u << 10)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char* fmt, ...) {
  va_list ap;
  FILE* out = g_console ? g_console : stderr;
  fprintf(out, "morph-load[%s]: ", g_vm);
  va_start(ap, fmt);
  vfprintf(out, fmt, ap);
  va_end(ap);
  fputc('\n', out);
  fflush(out);
}

/* Token bucket: credit grows at `rate` bytes/s, capped at 200 ms worth so an idle period does not turn
 * into a burst. pace_wait() returns once `chunk` bytes may be spent, or 0 when the target is zero. */
struct pacer {
  uint64_t last_ns;
  double credit;
};

static int pace_wait(struct pacer* p, uint64_t rate, uint64_t chunk) {
  for (;;) {
    uint64_t now = now_ns();
    if (rate == 0) {
      p->last_ns = now;
      p->credit = 0;
      return 0;
    }
    if (p->last_ns == 0) p->last_ns = now;
    p->credit += (double)rate * (double)(now - p->last_ns) / 1e9;
    p->last_ns = now;
    double cap = (double)rate * 0.2;
    if (cap < (double)chunk) cap = (double)chunk;
    if (p->credit > cap) p->credit = cap;
    if (p->credit >= (double)chunk) {
      p->credit -= (double)chunk;
      return 1;
    }
    uint64_t wait = (uint64_t)(((double)chunk - p->credit) / (double)rate * 1e9);
    if (wait > 100000000ull) wait = 100000000ull;
    sleep_ns(wait);
    return -1; /* re-read the target after sleeping */
  }
}

static uint64_t io_chunk_for(uint64_t rate) {
  uint64_t c = rate / 20; /* about 20 requests per second */
  if (c < kIoAlign) c = kIoAlign;
  if (c > kMaxIoChunk) c = kMaxIoChunk;
  return c & ~(uint64_t)(kIoAlign - 1);
}

/* ---- CPU: in each 10 ms period, spin for cpu% of it and sleep the rest. ---- */
static void* cpu_main(void* arg) {
  (void)arg;
  const uint64_t period = 10000000ull;
  volatile uint64_t sink = 0;
  for (;;) {
    uint64_t pct = atomic_load(&g_target[kTargetCpu]);
    if (pct > 100) pct = 100;
    uint64_t start = now_ns();
    uint64_t busy = period * pct / 100;
    while (now_ns() - start < busy) {
      for (int i = 0; i < 1000; i++) sink += (uint64_t)i * 2654435761u;
    }
    uint64_t spent = now_ns() - start;
    atomic_fetch_add(&g_done[kTargetCpu], spent < busy ? spent : busy);
    if (spent < period) sleep_ns(period - spent);
  }
  return NULL;
}

/* ---- Disk: O_DIRECT reads and writes on /dev/vda at the target rates. ---- */
struct disk_job {
  int target;
  int fd;
  uint64_t span_start, span_len;
};

static void* disk_main(void* arg) {
  struct disk_job* job = arg;
  void* buf = NULL;
  if (posix_memalign(&buf, kIoAlign, kMaxIoChunk) != 0) {
    say("%s: cannot allocate an aligned buffer", kTargetNames[job->target]);
    return NULL;
  }
  memset(buf, 0x5a, kMaxIoChunk);
  struct pacer p = {0};
  uint64_t off = 0;
  for (;;) {
    uint64_t rate = atomic_load(&g_target[job->target]);
    uint64_t chunk = io_chunk_for(rate);
    int r = pace_wait(&p, rate, chunk);
    if (r == 0) {
      sleep_ns(100000000ull);
      continue;
    }
    if (r < 0) continue;
    if (off + chunk > job->span_len) off = 0;
    ssize_t n = job->target == kTargetDiskRead ? pread(job->fd, buf, chunk, (off_t)(job->span_start + off))
                                               : pwrite(job->fd, buf, chunk, (off_t)(job->span_start + off));
    if (n < 0) {
      atomic_fetch_add(&g_errors, 1);
      say("%s on /dev/vda at %llu failed: %s", kTargetNames[job->target], (unsigned long long)(job->span_start + off),
          strerror(errno));
      sleep_ns(1000000000ull);
    } else {
      atomic_fetch_add(&g_done[job->target], (uint64_t)n);
    }
    off += chunk;
  }
  return NULL;
}

static struct sockaddr_in host_addr(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, g_host, &a.sin_addr);
  return a;
}

/* ---- Network transmit: UDP datagrams to the host's discard port. ---- */
static void* net_tx_main(void* arg) {
  (void)arg;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    say("net_tx: socket failed: %s", strerror(errno));
    return NULL;
  }
  struct sockaddr_in dst = host_addr(9);
  static char payload[1024];
  memset(payload, 0x6d, sizeof payload);
  struct pacer p = {0};
  for (;;) {
    uint64_t rate = atomic_load(&g_target[kTargetNetTx]);
    int r = pace_wait(&p, rate, sizeof payload);
    if (r == 0) {
      sleep_ns(100000000ull);
      continue;
    }
    if (r < 0) continue;
    /* Unconnected: the host's ICMP port-unreachable replies do not turn into send errors. */
    if (sendto(fd, payload, sizeof payload, 0, (struct sockaddr*)&dst, sizeof dst) > 0)
      atomic_fetch_add(&g_done[kTargetNetTx], sizeof payload);
  }
  return NULL;
}

static int tcp_connect(int timeout_s, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = timeout_s};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a = host_addr(g_port);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_get(int fd, const char* path) {
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, g_host);
  return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

/* ---- Network receive: an endless download from the host, read no faster than the target. ---- */
static void* net_rx_main(void* arg) {
  (void)arg;
  static char buf[64 << 10];
  struct pacer p = {0};
  int fd = -1;
  for (;;) {
    uint64_t rate = atomic_load(&g_target[kTargetNetRx]);
    if (rate == 0 && fd >= 0) {
      close(fd);
      fd = -1;
    }
    uint64_t chunk = rate / 20;
    if (chunk < 1024) chunk = 1024;
    if (chunk > sizeof buf) chunk = sizeof buf;
    int r = pace_wait(&p, rate, chunk);
    if (r == 0) {
      sleep_ns(100000000ull);
      continue;
    }
    if (r < 0) continue;
    if (fd < 0) {
      /* A small receive buffer keeps the host's sender paced by TCP flow control. */
      fd = tcp_connect(3, 64 << 10);
      if (fd < 0 || send_get(fd, "/blob") != 0) {
        if (fd >= 0) close(fd);
        fd = -1;
        sleep_ns(500000000ull);
        continue;
      }
    }
    size_t left = chunk;
    while (left > 0) {
      ssize_t n = recv(fd, buf, left, 0);
      if (n <= 0) { /* end of the blob or a broken connection: start another download */
        close(fd);
        fd = -1;
        break;
      }
      left -= (size_t)n;
      atomic_fetch_add(&g_done[kTargetNetRx], (uint64_t)n);
    }
  }
  return NULL;
}

/* ---- Memory: dirty pages of a buffer at the target rate (one word per 4 KiB page). ---- */
#define kDirtySpan (64ull << 20)
#define kPage 4096u
#define kDirtyChunk (64u * kPage)

static void* mem_dirty_main(void* arg) {
  (void)arg;
  unsigned char* buf = NULL;
  struct pacer p = {0};
  uint64_t off = 0, stamp = 0;
  for (;;) {
    uint64_t rate = atomic_load(&g_target[kTargetMemDirty]);
    int r = pace_wait(&p, rate, kDirtyChunk);
    if (r == 0) {
      sleep_ns(100000000ull);
      continue;
    }
    if (r < 0) continue;
    if (buf == NULL && (buf = malloc(kDirtySpan)) == NULL) {
      say("mem_dirty: cannot allocate %llu MiB", (unsigned long long)(kDirtySpan >> 20));
      atomic_store(&g_target[kTargetMemDirty], 0);
      continue;
    }
    ++stamp;
    for (uint64_t i = 0; i < kDirtyChunk; i += kPage) *(volatile uint64_t*)(buf + off + i) = stamp;
    off = (off + kDirtyChunk) % kDirtySpan;
    atomic_fetch_add(&g_done[kTargetMemDirty], kDirtyChunk);
  }
  return NULL;
}

/* ---- Counters: once a second while any target is non-zero. ---- */
static void* counters_main(void* arg) {
  (void)arg;
  for (;;) {
    sleep_ns(1000000000ull);
    int active = 0;
    for (int i = 0; i < kTargetCount; i++) active |= atomic_load(&g_target[i]) != 0;
    if (!active) continue;
    say("counters t=%.1f cpu_ms=%llu rd=%llu wr=%llu tx=%llu rx=%llu dirty=%llu polls=%llu errors=%llu",
        (double)now_ns() / 1e9, (unsigned long long)(atomic_load(&g_done[kTargetCpu]) / 1000000ull),
        (unsigned long long)atomic_load(&g_done[kTargetDiskRead]),
        (unsigned long long)atomic_load(&g_done[kTargetDiskWrite]),
        (unsigned long long)atomic_load(&g_done[kTargetNetTx]), (unsigned long long)atomic_load(&g_done[kTargetNetRx]),
        (unsigned long long)atomic_load(&g_done[kTargetMemDirty]), (unsigned long long)atomic_load(&g_polls),
        (unsigned long long)atomic_load(&g_errors));
  }
  return NULL;
}

/* ---- Control: poll /targets, a single line "cpu=50 disk_read=4194304 ..." (plain integers). ---- */
static int poll_targets(uint64_t out[kTargetCount]) {
  int fd = tcp_connect(2, 0);
  if (fd < 0) return -1;
  char resp[2048];
  size_t have = 0;
  if (send_get(fd, "/targets") != 0) {
    close(fd);
    return -1;
  }
  for (;;) {
    ssize_t n = recv(fd, resp + have, sizeof resp - 1 - have, 0);
    if (n <= 0) break;
    have += (size_t)n;
    if (have == sizeof resp - 1) break;
  }
  close(fd);
  resp[have] = '\0';
  if (strncmp(resp, "HTTP/1.", 7) != 0 || strstr(resp, " 200") == NULL) return -1;
  char* body = strstr(resp, "\r\n\r\n");
  if (body == NULL) return -1;
  body += 4;
  for (int i = 0; i < kTargetCount; i++) out[i] = 0;
  char* save = NULL;
  for (char* tok = strtok_r(body, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
    char* eq = strchr(tok, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    for (int i = 0; i < kTargetCount; i++) {
      if (strcmp(tok, kTargetNames[i]) == 0) out[i] = strtoull(eq + 1, NULL, 10);
    }
  }
  return 0;
}

static void read_cmdline(void) {
  FILE* f = fopen("/proc/cmdline", "r");
  if (f == NULL) return;
  char line[4096];
  if (fgets(line, sizeof line, f) != NULL) {
    char* save = NULL;
    for (char* tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
      if (strncmp(tok, "morph.host=", 11) == 0) snprintf(g_host, sizeof g_host, "%s", tok + 11);
      if (strncmp(tok, "morph.port=", 11) == 0) g_port = atoi(tok + 11);
      if (strncmp(tok, "morph.vm=", 9) == 0) snprintf(g_vm, sizeof g_vm, "%s", tok + 9);
    }
  }
  fclose(f);
}

int main(void) {
  g_console = fopen("/dev/console", "w");
  read_cmdline();

  static struct disk_job rd = {.target = kTargetDiskRead, .fd = -1};
  static struct disk_job wr = {.target = kTargetDiskWrite, .fd = -1};
  int dfd = open("/dev/vda", O_RDWR | O_DIRECT);
  if (dfd < 0) {
    say("cannot open /dev/vda with O_DIRECT: %s (disk load disabled)", strerror(errno));
  } else {
    uint64_t size = (uint64_t)lseek(dfd, 0, SEEK_END);
    rd.fd = wr.fd = dfd;
    rd.span_start = 0;
    rd.span_len = size < kDiskReadSpan ? size : kDiskReadSpan;
    wr.span_start = size / 2;
    wr.span_len = size - size / 2;
  }

  pthread_t t;
  pthread_create(&t, NULL, cpu_main, NULL);
  if (dfd >= 0) {
    pthread_create(&t, NULL, disk_main, &rd);
    pthread_create(&t, NULL, disk_main, &wr);
  }
  pthread_create(&t, NULL, net_tx_main, NULL);
  pthread_create(&t, NULL, net_rx_main, NULL);
  pthread_create(&t, NULL, mem_dirty_main, NULL);
  pthread_create(&t, NULL, counters_main, NULL);

  say("polling http://%s:%d/targets", g_host, g_port);
  int ready = 0, failures = 0;
  uint64_t prev[kTargetCount] = {0};
  for (;;) {
    uint64_t next[kTargetCount];
    if (poll_targets(next) == 0) {
      atomic_fetch_add(&g_polls, 1);
      if (!ready) {
        say("ready (first poll of the control endpoint succeeded)");
        ready = 1;
      }
      failures = 0;
      if (memcmp(next, prev, sizeof next) != 0) {
        for (int i = 0; i < kTargetCount; i++) atomic_store(&g_target[i], next[i]);
        say("targets cpu=%llu disk_read=%llu disk_write=%llu net_tx=%llu net_rx=%llu mem_dirty=%llu",
            (unsigned long long)next[0], (unsigned long long)next[1], (unsigned long long)next[2],
            (unsigned long long)next[3], (unsigned long long)next[4], (unsigned long long)next[5]);
        memcpy(prev, next, sizeof prev);
      }
    } else if (++failures == 20) {
      say("control endpoint http://%s:%d/targets unreachable for 10 s; keeping the last targets", g_host, g_port);
    }
    sleep_ns(500000000ull);
  }
}
