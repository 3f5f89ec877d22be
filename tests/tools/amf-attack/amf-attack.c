// SPDX-License-Identifier: GPL-2.0
/*
 * amf-attack: a stranger on the storage network, for dm-amf's `hostile` test (runs in a
 * guest). It connects to a replication listener from a source address of its own and
 * misbehaves; it never knows the group's key.
 *
 *   amf-attack MODE SRC DST PORT N SECS
 *
 *   loris       N TCP connections that each send one byte and then nothing; one that the
 *               listener closes is opened again, until SECS have passed
 *   trickle     N TCP connections that each send one byte a second (a frame that never
 *               ends), reopened like loris, for SECS
 *   flood       N TCP connections opened as fast as the kernel lets us, each held open
 *               (silent) until the listener closes it or SECS have passed
 *   garbage     N TCP connections that each send 300 bytes that are not dm-amf's framing,
 *               then wait (at most SECS) for the listener to close them
 *   rdma-hold   N RDMA connections, established and then silent (they never send a
 *               handshake), reopened when the listener disconnects them, for SECS
 *   rdma-abort  N RDMA connection requests, each from a child process that dies right after
 *               sending it (the request is never completed)
 *
 * Prints one line `amf-attack: MODE attempts=<a> closed=<c>`: connections (requests) tried
 * and how many of them the listener closed (or refused) before we did. Exit 0 unless the
 * tool itself failed (bad arguments, no socket).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#define MAX_CONN 1000

static struct sockaddr_in src, dst;
static long attempts, closed;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr, "usage: amf-attack loris|trickle|flood|garbage|rdma-hold|rdma-abort "
			"<src> <dst> <port> <n> <secs>\n");
	return 2;
}

/* A non-blocking TCP connection from `src` to `dst`, or -1. */
static int tcp_open(void)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
		perror("amf-attack: bind");
		close(fd);
		return -1;
	}
	attempts++;
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		closed++;
		close(fd);
		return -2;
	}
	return fd;
}

/* Whether the listener closed `fd` (reset, FIN, or a failed connect). */
static int gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[512];
	ssize_t r;

	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (p.revents & (POLLERR | POLLHUP))
		return 1;
	r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Whether the non-blocking connect of `fd` has completed. */
static int connected(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, 0) > 0 && (p.revents & POLLOUT) && !(p.revents & (POLLERR | POLLHUP));
}

/* loris, trickle, flood, garbage. */
static int tcp_attack(const char *mode, int n, double secs)
{
	static int fd[MAX_CONN];
	static char sent[MAX_CONN];
	int reopen = !strcmp(mode, "loris") || !strcmp(mode, "trickle");
	int trickle = !strcmp(mode, "trickle"), garbage = !strcmp(mode, "garbage");
	double end = now() + secs, last_tick = 0;
	int i, open_n;

	for (i = 0; i < n; i++) {
		fd[i] = tcp_open();
		sent[i] = 0;
		if (fd[i] == -1)
			return 1;
	}
	for (;;) {
		int tick = now() - last_tick >= 1.0;

		if (tick)
			last_tick = now();
		open_n = 0;
		for (i = 0; i < n; i++) {
			if (fd[i] < 0) {
				if (reopen && now() < end)
					fd[i] = tcp_open(), sent[i] = 0;
				continue;
			}
			if (gone(fd[i])) {
				closed++;
				close(fd[i]);
				fd[i] = -2;
				continue;
			}
			open_n++;
			if (!connected(fd[i]))
				continue;
			if (garbage && !sent[i]) {
				char junk[300];

				memset(junk, 0x5a, sizeof(junk));
				if (send(fd[i], junk, sizeof(junk), MSG_NOSIGNAL) > 0)
					sent[i] = 1;
			} else if ((!sent[i] && !strcmp(mode, "loris")) || (trickle && tick)) {
				/* The first byte of a frame header (the magic's), then more of it. */
				if (send(fd[i], "A", 1, MSG_NOSIGNAL) == 1)
					sent[i] = 1;
			}
		}
		if (now() >= end || (!reopen && open_n == 0))
			break;
		usleep(20000);
	}
	for (i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return 0;
}

/* An RDMA endpoint from `src` to `dst` (librdmacm's synchronous API), or NULL. */
static struct rdma_cm_id *rdma_ep(const char *s, const char *d, const char *port)
{
	struct rdma_addrinfo hints = { .ai_port_space = RDMA_PS_TCP }, *res;
	struct ibv_qp_init_attr attr = {
		.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.qp_type = IBV_QPT_RC, .sq_sig_all = 1,
	};
	struct rdma_cm_id *id;

	hints.ai_src_addr = (struct sockaddr *)&src;
	hints.ai_src_len = sizeof(src);
	(void)s;
	if (rdma_getaddrinfo(d, port, &hints, &res)) {
		perror("amf-attack: rdma_getaddrinfo");
		return NULL;
	}
	if (rdma_create_ep(&id, res, NULL, &attr)) {
		perror("amf-attack: rdma_create_ep");
		rdma_freeaddrinfo(res);
		return NULL;
	}
	rdma_freeaddrinfo(res);
	return id;
}

/* rdma-hold: each connection in a child of its own (rdma_connect blocks). */
static int rdma_attack(const char *mode, const char *s, const char *d, const char *port,
		       int n, double secs)
{
	int i, status;
	pid_t pid;

	for (i = 0; i < n; i++) {
		pid = fork();
		if (pid < 0)
			return 1;
		if (pid > 0)
			continue;
		/* The child: attempts and refusals go back in its exit status. */
		{
			double end = now() + secs;
			int a = 0, c = 0;

			do {
				struct rdma_cm_id *id = rdma_ep(s, d, port);
				struct rdma_conn_param p = { .retry_count = 7, .rnr_retry_count = 7 };

				if (!id)
					_exit(255);
				a++;
				if (!strcmp(mode, "rdma-abort")) {
					/* The request goes out; the process dies before the reply. */
					rdma_connect(id, &p);
					_exit(0);
				}
				if (rdma_connect(id, &p)) {
					c++;
				} else {
					/* Established; send nothing; wait for the listener's disconnect. */
					struct rdma_cm_event *ev;
					struct pollfd pf = { .fd = id->channel ? id->channel->fd : -1,
							     .events = POLLIN };

					while (now() < end) {
						if (pf.fd >= 0 && poll(&pf, 1, 100) > 0) {
							if (!rdma_get_cm_event(id->channel, &ev)) {
								int dis = ev->event == RDMA_CM_EVENT_DISCONNECTED;

								rdma_ack_cm_event(ev);
								if (dis) {
									c++;
									break;
								}
							}
						} else if (pf.fd < 0) {
							usleep(100000);
						}
					}
					rdma_disconnect(id);
				}
				rdma_destroy_ep(id);
				if (now() < end)
					usleep(100000);
			} while (now() < end);
			_exit((a & 0xf) << 4 | (c & 0xf));
		}
	}
	while ((pid = wait(&status)) > 0) {
		if (!strcmp(mode, "rdma-abort")) {
			attempts++;
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) != 255) {
			attempts += WEXITSTATUS(status) >> 4;
			closed += WEXITSTATUS(status) & 0xf;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	int n, rc;
	double secs;

	if (argc != 7)
		return usage();
	mode = argv[1];
	n = atoi(argv[5]);
	secs = atof(argv[6]);
	if (n < 1 || n > MAX_CONN || secs < 0)
		return usage();
	src.sin_family = AF_INET;
	dst.sin_family = AF_INET;
	dst.sin_port = htons(atoi(argv[4]));
	if (inet_pton(AF_INET, argv[2], &src.sin_addr) != 1 ||
	    inet_pton(AF_INET, argv[3], &dst.sin_addr) != 1)
		return usage();
	signal(SIGPIPE, SIG_IGN);
	if (!strncmp(mode, "rdma-", 5))
		rc = rdma_attack(mode, argv[2], argv[3], argv[4], n, secs);
	else if (!strcmp(mode, "loris") || !strcmp(mode, "trickle") || !strcmp(mode, "flood") ||
		 !strcmp(mode, "garbage"))
		rc = tcp_attack(mode, n, secs);
	else
		return usage();
	printf("amf-attack: %s attempts=%ld closed=%ld\n", mode, attempts, closed);
	return rc;
}
