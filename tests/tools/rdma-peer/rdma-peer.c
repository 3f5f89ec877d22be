// SPDX-License-Identifier: GPL-2.0
/*
 * rdma-peer: a foreign RDMA peer for dm-amf's RDMA transport tests (runs in the guests).
 *
 *   rdma-peer garbage <a.b.c.d> <port>   connect, send 256 bytes that are not dm-amf's
 *                                        framing (0x5a), wait for the send to complete,
 *                                        wait 1 s, disconnect; exit 0 if it all happened
 *   rdma-peer abort <a.b.c.d> <port>     resolve, send the connection request and die
 *                                        at once (a peer killed during connection set-up)
 *
 * librdmacm's synchronous API (rdma_create_ep, rdma_post_send, rdma_get_send_comp): the
 * library every RDMA tool uses, nothing hand-rolled.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#define RECV_BYTES 65536
#define GARBAGE_BYTES 256

static int usage(void)
{
	fprintf(stderr, "usage: rdma-peer garbage|abort <a.b.c.d> <port>\n");
	return 2;
}

static struct rdma_cm_id *endpoint(const char *ip, const char *port)
{
	struct rdma_addrinfo hints = { .ai_port_space = RDMA_PS_TCP }, *res;
	struct ibv_qp_init_attr attr = {
		.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.qp_type = IBV_QPT_RC, .sq_sig_all = 1,
	};
	struct rdma_cm_id *id;
	int ret;

	ret = rdma_getaddrinfo(ip, port, &hints, &res);
	if (ret) {
		perror("rdma-peer: rdma_getaddrinfo");
		return NULL;
	}
	ret = rdma_create_ep(&id, res, NULL, &attr);
	rdma_freeaddrinfo(res);
	if (ret) {
		perror("rdma-peer: rdma_create_ep");
		return NULL;
	}
	return id;
}

int main(int argc, char **argv)
{
	static char recv_buf[RECV_BYTES], send_buf[GARBAGE_BYTES];
	struct ibv_mr *recv_mr, *send_mr;
	struct rdma_cm_id *id;
	struct ibv_wc wc;

	if (argc != 4)
		return usage();
	id = endpoint(argv[2], argv[3]);
	if (!id)
		return 1;
	if (!strcmp(argv[1], "abort")) {
		struct rdma_conn_param p = { .retry_count = 7, .rnr_retry_count = 7 };

		/* The request goes out; the process dies before the reply. */
		if (rdma_connect(id, &p))
			perror("rdma-peer: rdma_connect");
		_exit(0);
	}
	if (strcmp(argv[1], "garbage"))
		return usage();
	recv_mr = rdma_reg_msgs(id, recv_buf, sizeof(recv_buf));
	send_mr = rdma_reg_msgs(id, send_buf, sizeof(send_buf));
	if (!recv_mr || !send_mr) {
		perror("rdma-peer: rdma_reg_msgs");
		return 1;
	}
	/* A receive large enough for the peer's first frame, so that only ours is bad. */
	if (rdma_post_recv(id, NULL, recv_buf, sizeof(recv_buf), recv_mr)) {
		perror("rdma-peer: rdma_post_recv");
		return 1;
	}
	if (rdma_connect(id, NULL)) {
		perror("rdma-peer: rdma_connect");
		return 1;
	}
	memset(send_buf, 0x5a, sizeof(send_buf));
	if (rdma_post_send(id, NULL, send_buf, sizeof(send_buf), send_mr, 0)) {
		perror("rdma-peer: rdma_post_send");
		return 1;
	}
	if (rdma_get_send_comp(id, &wc) <= 0 || wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "rdma-peer: send failed (%s)\n", ibv_wc_status_str(wc.status));
		return 1;
	}
	printf("rdma-peer: sent %d bytes of garbage to %s:%s\n", GARBAGE_BYTES, argv[2], argv[3]);
	sleep(1);
	rdma_disconnect(id);
	rdma_dereg_mr(send_mr);
	rdma_dereg_mr(recv_mr);
	rdma_destroy_ep(id);
	return 0;
}
