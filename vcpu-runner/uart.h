/* A 16550A UART: register model, receive buffer, batched transmit. */
#ifndef BH_RUNNER_UART_H
#define BH_RUNNER_UART_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/state.pb-c.h"

#define BH_UART_RX_BUF	4096
#define BH_UART_TX_BUF	1024
#define BH_UART_NR_REGS 8

struct bh_uart_ops {
	/* Raise (1) or lower (0) the interrupt line. Called with the lock held.
	 */
	void (*set_irq)(void *opaque, int level);
	/* Bytes the guest transmitted. Called without the lock, which the
	 * runner's main thread needs while output may wait for the
	 * controller, and with out_lock held, so that outputs keep their
	 * order. */
	void (*output)(void *opaque, const uint8_t *data, size_t len);
	/* The transmit buffer just became non-empty: whoever flushes partial
	 * lines must wake up. Called with the lock held; may be NULL. */
	void (*tx_pending)(void *opaque);
};

struct bh_uart {
	pthread_mutex_t lock;
	/* Held from taking bytes out of tx until ops->output has them; taken
	 * before lock, and only where output may follow (THR writes, flush).
	 */
	pthread_mutex_t out_lock;
	const struct bh_uart_ops *ops;
	void *opaque;
	uint8_t ier, lcr, mcr, lsr_extra, scr, fcr, dll, dlm;
	int thr_ipending; /* THR empty interrupt not yet acknowledged */
	int irq_level;
	uint8_t rx[BH_UART_RX_BUF];
	size_t rx_head, rx_len;
	size_t rx_dropped;
	uint8_t tx[BH_UART_TX_BUF];
	size_t tx_len;
};

void bh_uart_init(struct bh_uart *u, const struct bh_uart_ops *ops,
		  void *opaque);
void bh_uart_destroy(struct bh_uart *u);

/* Guest access to register off (0..7); byte-wide. */
uint8_t bh_uart_read(struct bh_uart *u, unsigned int off);
void bh_uart_write(struct bh_uart *u, unsigned int off, uint8_t val);

/* Host input for the guest; returns the bytes accepted (the rest does not
 * fit the receive buffer and is dropped by the caller's choice). */
size_t bh_uart_receive(struct bh_uart *u, const uint8_t *data, size_t len);

/* Passes buffered transmit bytes to ops->output. */
void bh_uart_flush(struct bh_uart *u);
/* Whether transmit bytes wait for a flush (unlocked peek). */
int bh_uart_tx_pending(struct bh_uart *u);

/*
 * Saved state (proto/state.proto). bh_uart_save fills s, whose rx and tx
 * point into buf (BH_UART_STATE_BUF bytes, which must outlive s).
 * bh_uart_restore replaces u's guest-visible state with s after checking
 * every field (-EINVAL, u unchanged, for one the model cannot hold), then
 * sets the interrupt line to match.
 */
#define BH_UART_STATE_BUF (BH_UART_RX_BUF + BH_UART_TX_BUF)
void bh_uart_save(struct bh_uart *u, Bh__UartState *s, uint8_t *buf);
int bh_uart_restore(struct bh_uart *u, const Bh__UartState *s);

#endif
