// SPDX-License-Identifier: GPL-2.0
/* Thin wrappers of static inlines for dm-amf's Rust code; see helpers.h. */

#include "helpers.h"

void amf_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

enum req_op amf_bio_op(const struct bio *bio)
{
	return bio_op(bio);
}

sector_t amf_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

void amf_bio_io_error(struct bio *bio)
{
	bio_io_error(bio);
}

void amf_bio_inc_remaining(struct bio *bio)
{
	bio_inc_remaining(bio);
}

struct page *amf_virt_to_page(const void *addr)
{
	return virt_to_page(addr);
}

void amf_bio_advance_iter(const struct bio *bio, struct bvec_iter *iter, unsigned int bytes)
{
	bio_advance_iter(bio, iter, bytes);
}

void amf_init_completion(struct completion *x)
{
	init_completion(x);
}

void amf_reinit_completion(struct completion *x)
{
	reinit_completion(x);
}

unsigned int amf_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void amf_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

void amf_sk_set_allocation(struct sock *sk, gfp_t gfp)
{
	sk->sk_allocation = gfp;
}

void amf_sk_set_use_task_frag(struct sock *sk, bool use)
{
	sk->sk_use_task_frag = use;
}

/* WRITE_ONCE as in sock_set_timeout(): a blocked sender or receiver may read it. */
void amf_sk_set_sndtimeo(struct sock *sk, long timeo)
{
	WRITE_ONCE(sk->sk_sndtimeo, timeo);
}

void amf_sk_set_rcvtimeo(struct sock *sk, long timeo)
{
	WRITE_ONCE(sk->sk_rcvtimeo, timeo);
}

/*
 * SHASH_DESC_ON_STACK is a macro that only C can expand: one digest of the concatenated
 * parts on a private descriptor (so one keyed tfm serves any number of threads), which is
 * wiped afterwards because it holds key-derived state.
 */
int amf_hmac_parts(struct crypto_shash *tfm, const struct kvec *parts, unsigned int n, u8 *out)
{
	SHASH_DESC_ON_STACK(desc, tfm);
	unsigned int i;
	int err;

	desc->tfm = tfm;
	err = crypto_shash_init(desc);
	for (i = 0; !err && i < n; i++)
		err = crypto_shash_update(desc, parts[i].iov_base, parts[i].iov_len);
	if (!err)
		err = crypto_shash_final(desc, out);
	shash_desc_zero(desc);
	return err;
}

unsigned int amf_crypto_shash_digestsize(struct crypto_shash *tfm)
{
	return crypto_shash_digestsize(tfm);
}

void amf_crypto_free_shash(struct crypto_shash *tfm)
{
	crypto_free_shash(tfm);
}

int amf_crypto_memneq(const void *a, const void *b, size_t size)
{
	return crypto_memneq(a, b, size);
}

struct user_key_payload *amf_user_key_payload_locked(const struct key *key)
{
	return user_key_payload_locked(key);
}

void amf_memzero_explicit(void *s, size_t count)
{
	memzero_explicit(s, count);
}

#if IS_ENABLED(CONFIG_INFINIBAND_ADDR_TRANS)
/* A reliable-connected id in the initial network namespace (macro: KBUILD_MODNAME). */
struct rdma_cm_id *amf_rdma_create_id(rdma_cm_event_handler handler, void *context)
{
	return rdma_create_id(&init_net, handler, context, RDMA_PS_TCP, IB_QPT_RC);
}

void amf_rdma_set_context(struct rdma_cm_id *id, void *context)
{
	id->context = context;
}

void *amf_rdma_context(const struct rdma_cm_id *id)
{
	return id->context;
}

struct ib_device *amf_rdma_device(const struct rdma_cm_id *id)
{
	return id->device;
}

struct ib_qp *amf_rdma_qp(const struct rdma_cm_id *id)
{
	return id->qp;
}

/* The IPv4 address and port of the connection's other end (for logs). */
int amf_rdma_peer_in(const struct rdma_cm_id *id, __be32 *addr, __be16 *port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&id->route.addr.dst_addr;

	if (sin->sin_family != AF_INET)
		return -EAFNOSUPPORT;
	*addr = sin->sin_addr.s_addr;
	*port = sin->sin_port;
	return 0;
}

int amf_rdma_event_type(const struct rdma_cm_event *event)
{
	return event->event;
}

int amf_rdma_event_status(const struct rdma_cm_event *event)
{
	return event->status;
}

int amf_rdma_bind_addr(struct rdma_cm_id *id, __be32 addr, __be16 port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = port,
				   .sin_addr.s_addr = addr };

	return rdma_bind_addr(id, (struct sockaddr *)&sin);
}

int amf_rdma_resolve_addr(struct rdma_cm_id *id, __be32 addr, __be16 port, unsigned long timeout_ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = port,
				   .sin_addr.s_addr = addr };

	return rdma_resolve_addr(id, NULL, (struct sockaddr *)&sin, timeout_ms);
}

/* An RC queue pair whose sends and receives complete on @cq, every send signalled. */
int amf_rdma_create_qp(struct rdma_cm_id *id, struct ib_pd *pd, struct ib_cq *cq,
		       u32 max_send_wr, u32 max_recv_wr, u32 max_send_sge)
{
	struct ib_qp_init_attr attr = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IB_QPT_RC,
		.sq_sig_type = IB_SIGNAL_ALL_WR,
		.cap = { .max_send_wr = max_send_wr, .max_recv_wr = max_recv_wr,
			 .max_send_sge = max_send_sge, .max_recv_sge = 1 },
	};

	return rdma_create_qp(id, pd, &attr);
}

/* Sends only (no RDMA READ); the transport retries and waits for receive buffers forever. */
static void amf_rdma_conn_param(struct rdma_conn_param *p)
{
	*p = (struct rdma_conn_param){ .retry_count = 7, .rnr_retry_count = 7 };
}

int amf_rdma_connect(struct rdma_cm_id *id)
{
	struct rdma_conn_param p;

	amf_rdma_conn_param(&p);
	return rdma_connect(id, &p);
}

/*
 * Accepts a connection request outside its event handler (rdma_accept needs the handler
 * lock) and points the id's later events at @context under the same lock.
 */
int amf_rdma_accept(struct rdma_cm_id *id, void *context)
{
	struct rdma_conn_param p;
	int ret;

	amf_rdma_conn_param(&p);
	rdma_lock_handler(id);
	id->context = context;
	ret = rdma_accept(id, &p);
	rdma_unlock_handler(id);
	return ret;
}

struct ib_pd *amf_ib_alloc_pd(struct ib_device *dev)
{
	return ib_alloc_pd(dev, 0);
}

void amf_ib_dealloc_pd(struct ib_pd *pd)
{
	ib_dealloc_pd(pd);
}

u32 amf_ib_pd_local_dma_lkey(const struct ib_pd *pd)
{
	return pd->local_dma_lkey;
}

/* Completions are handled in process context (ib_comp_wq, WQ_MEM_RECLAIM). */
struct ib_cq *amf_ib_alloc_cq(struct ib_device *dev, void *private, int nr_cqe)
{
	return ib_alloc_cq(dev, private, nr_cqe, 0, IB_POLL_WORKQUEUE);
}

/* One signalled IB_WR_SEND of @n gathered pieces. */
int amf_ib_post_send(struct ib_qp *qp, struct ib_cqe *cqe, struct ib_sge *sges, int n)
{
	struct ib_send_wr wr = { .wr_cqe = cqe, .sg_list = sges, .num_sge = n,
				 .opcode = IB_WR_SEND, .send_flags = IB_SEND_SIGNALED };

	return ib_post_send(qp, &wr, NULL);
}

int amf_ib_post_recv(struct ib_qp *qp, struct ib_cqe *cqe, struct ib_sge *sge)
{
	struct ib_recv_wr wr = { .wr_cqe = cqe, .sg_list = sge, .num_sge = 1 };

	return ib_post_recv(qp, &wr, NULL);
}

struct ib_cqe *amf_ib_wc_cqe(const struct ib_wc *wc)
{
	return wc->wr_cqe;
}

int amf_ib_wc_status(const struct ib_wc *wc)
{
	return wc->status;
}

u32 amf_ib_wc_byte_len(const struct ib_wc *wc)
{
	return wc->byte_len;
}

static enum dma_data_direction amf_dir(bool to_device)
{
	return to_device ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
}

u64 amf_ib_dma_map_single(struct ib_device *dev, void *addr, size_t len, bool to_device)
{
	return ib_dma_map_single(dev, addr, len, amf_dir(to_device));
}

int amf_ib_dma_mapping_error(struct ib_device *dev, u64 addr)
{
	return ib_dma_mapping_error(dev, addr);
}

void amf_ib_dma_unmap_single(struct ib_device *dev, u64 addr, size_t len, bool to_device)
{
	ib_dma_unmap_single(dev, addr, len, amf_dir(to_device));
}

void amf_ib_dma_sync_for_cpu(struct ib_device *dev, u64 addr, size_t len, bool to_device)
{
	ib_dma_sync_single_for_cpu(dev, addr, len, amf_dir(to_device));
}

void amf_ib_dma_sync_for_device(struct ib_device *dev, u64 addr, size_t len, bool to_device)
{
	ib_dma_sync_single_for_device(dev, addr, len, amf_dir(to_device));
}
#endif
