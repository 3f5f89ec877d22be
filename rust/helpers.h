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

void amf_bio_set_dev(struct bio *bio, struct block_device *bdev);
enum req_op amf_bio_op(const struct bio *bio);
sector_t amf_bdev_nr_sectors(struct block_device *bdev);
void amf_bio_io_error(struct bio *bio);

#endif /* DM_AMF_RUST_HELPERS_H */
