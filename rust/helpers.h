/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin C wrappers for the static inline functions and macros that dm-amf's Rust code
 * calls. Nothing here has logic of its own: each wrapper is one call or one field access.
 */
#ifndef DM_AMF_RUST_HELPERS_H
#define DM_AMF_RUST_HELPERS_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/completion.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/string.h>
#include <crypto/hash.h>
#include <crypto/utils.h>
#include <keys/user-type.h>
#include <net/sock.h>

void amf_bio_set_dev(struct bio *bio, struct block_device *bdev);
enum req_op amf_bio_op(const struct bio *bio);
sector_t amf_bdev_nr_sectors(struct block_device *bdev);
void amf_bio_io_error(struct bio *bio);
void amf_bio_inc_remaining(struct bio *bio);
struct page *amf_virt_to_page(const void *addr);
void amf_bio_advance_iter(const struct bio *bio, struct bvec_iter *iter, unsigned int bytes);
void amf_init_completion(struct completion *x);
void amf_reinit_completion(struct completion *x);
unsigned int amf_memalloc_noio_save(void);
void amf_memalloc_noio_restore(unsigned int flags);

/* net.rs: struct sock is opaque to the kernel crate's bindings. */
void amf_sk_set_allocation(struct sock *sk, gfp_t gfp);
void amf_sk_set_use_task_frag(struct sock *sk, bool use);
void amf_sk_set_sndtimeo(struct sock *sk, long timeo);
void amf_sk_set_rcvtimeo(struct sock *sk, long timeo);

/* crypto.rs */
int amf_hmac_parts(struct crypto_shash *tfm, const struct kvec *parts, unsigned int n, u8 *out);
unsigned int amf_crypto_shash_digestsize(struct crypto_shash *tfm);
void amf_crypto_free_shash(struct crypto_shash *tfm);
int amf_crypto_memneq(const void *a, const void *b, size_t size);

/* keyring.rs */
struct user_key_payload *amf_user_key_payload_locked(const struct key *key);
void amf_memzero_explicit(void *s, size_t count);

/* rdma.rs: the RDMA connection manager and verbs (only when the kernel has them). */
#if IS_ENABLED(CONFIG_INFINIBAND_ADDR_TRANS)
#include <rdma/ib_verbs.h>
#include <rdma/rdma_cm.h>

struct rdma_cm_id *amf_rdma_create_id(rdma_cm_event_handler handler, void *context);
void amf_rdma_set_context(struct rdma_cm_id *id, void *context);
void *amf_rdma_context(const struct rdma_cm_id *id);
struct ib_device *amf_rdma_device(const struct rdma_cm_id *id);
struct ib_qp *amf_rdma_qp(const struct rdma_cm_id *id);
int amf_rdma_peer_in(const struct rdma_cm_id *id, __be32 *addr, __be16 *port);
int amf_rdma_event_type(const struct rdma_cm_event *event);
int amf_rdma_event_status(const struct rdma_cm_event *event);
int amf_rdma_bind_addr(struct rdma_cm_id *id, __be32 addr, __be16 port);
int amf_rdma_resolve_addr(struct rdma_cm_id *id, __be32 addr, __be16 port, unsigned long timeout_ms);
int amf_rdma_create_qp(struct rdma_cm_id *id, struct ib_pd *pd, struct ib_cq *cq,
		       u32 max_send_wr, u32 max_recv_wr, u32 max_send_sge);
int amf_rdma_connect(struct rdma_cm_id *id);
int amf_rdma_accept(struct rdma_cm_id *id, void *context);
struct ib_pd *amf_ib_alloc_pd(struct ib_device *dev);
void amf_ib_dealloc_pd(struct ib_pd *pd);
u32 amf_ib_pd_local_dma_lkey(const struct ib_pd *pd);
struct ib_cq *amf_ib_alloc_cq(struct ib_device *dev, void *private, int nr_cqe);
int amf_ib_post_send(struct ib_qp *qp, struct ib_cqe *cqe, struct ib_sge *sges, int n);
int amf_ib_post_recv(struct ib_qp *qp, struct ib_cqe *cqe, struct ib_sge *sge);
struct ib_cqe *amf_ib_wc_cqe(const struct ib_wc *wc);
int amf_ib_wc_status(const struct ib_wc *wc);
u32 amf_ib_wc_byte_len(const struct ib_wc *wc);
u64 amf_ib_dma_map_single(struct ib_device *dev, void *addr, size_t len, bool to_device);
int amf_ib_dma_mapping_error(struct ib_device *dev, u64 addr);
void amf_ib_dma_unmap_single(struct ib_device *dev, u64 addr, size_t len, bool to_device);
void amf_ib_dma_sync_for_cpu(struct ib_device *dev, u64 addr, size_t len, bool to_device);
void amf_ib_dma_sync_for_device(struct ib_device *dev, u64 addr, size_t len, bool to_device);
#endif

#endif /* DM_AMF_RUST_HELPERS_H */
