/* 16550A UART model for ttyS0: what Linux's 8250 driver probes and drives. */
#include <errno.h>
#include <string.h>

#include "uart.h"

enum {
	UART_RBR_THR = 0,
	UART_IER = 1,
	UART_IIR_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define IER_RDI	 0x01
#define IER_THRI 0x02
#define IER_MASK 0x0f

#define IIR_NO_INT 0x01
#define IIR_THRI   0x02
#define IIR_RDI	   0x04
#define IIR_FIFO   0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR	 0x01
#define MCR_RTS	 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR	 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI	0x40
#define MSR_DCD 0x80

void bh_uart_init(struct bh_uart *u, const struct bh_uart_ops *ops,
		  void *opaque)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->out_lock, NULL);
	u->ops = ops;
	u->opaque = opaque;
	u->mcr = MCR_OUT2;
	/* 115200 baud divisor, as firmware leaves it. */
	u->dll = 1;
}

void bh_uart_destroy(struct bh_uart *u)
{
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->out_lock);
}

static uint8_t uart_iir(const struct bh_uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->rx_len)
		return fifo | IIR_RDI;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return fifo | IIR_THRI;
	return fifo | IIR_NO_INT;
}

/* The line follows "an interrupt is pending"; an edge-triggered IOAPIC pin
 * sees a new edge each time the guest acknowledges and new work arrives. */
static void uart_update_irq(struct bh_uart *u)
{
	int level = !(uart_iir(u) & IIR_NO_INT);

	/* OUT2 gates the interrupt on PC-compatible UARTs. */
	if (!(u->mcr & MCR_OUT2))
		level = 0;
	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->ops && u->ops->set_irq)
			u->ops->set_irq(u->opaque, level);
	}
}

/* Takes the buffered transmit bytes out under the lock, into buf (at least
 * BH_UART_TX_BUF bytes); their count. */
static size_t uart_tx_take_locked(struct bh_uart *u, uint8_t *buf)
{
	size_t n = u->tx_len;

	memcpy(buf, u->tx, n);
	__atomic_store_n(&u->tx_len, 0, __ATOMIC_RELEASE);
	return n;
}

/* Hands what uart_tx_take_locked took to the owner: after the lock is
 * released, with out_lock still held. */
static void uart_output(struct bh_uart *u, const uint8_t *buf, size_t n)
{
	if (n && u->ops && u->ops->output)
		u->ops->output(u->opaque, buf, n);
}

static void uart_rx_push(struct bh_uart *u, uint8_t c)
{
	if (u->rx_len == BH_UART_RX_BUF) {
		u->rx_dropped++;
		return;
	}
	u->rx[(u->rx_head + u->rx_len) % BH_UART_RX_BUF] = c;
	u->rx_len++;
}

/* Returns 1 when the transmit buffer is due to go out. */
static int uart_transmit(struct bh_uart *u, uint8_t c)
{
	int due = 0;

	if (u->mcr & MCR_LOOP) {
		uart_rx_push(u, c);
	} else {
		u->tx[u->tx_len] = c;
		__atomic_store_n(&u->tx_len, u->tx_len + 1, __ATOMIC_RELEASE);
		/* Only after the byte is counted: the woken flusher must see
		 * it. */
		if (u->tx_len == 1 && u->ops && u->ops->tx_pending)
			u->ops->tx_pending(u->opaque);
		/* Whole lines go out at once; partial lines wait for the
		 * runner's periodic flush so a prompt still appears. */
		due = c == '\n' || u->tx_len == BH_UART_TX_BUF;
	}
	/* Transmission is instant: the holding register is empty again. */
	u->thr_ipending = 1;
	return due;
}

static uint8_t uart_msr(const struct bh_uart *u)
{
	uint8_t msr = 0;

	if (u->mcr & MCR_LOOP) {
		if (u->mcr & MCR_DTR)
			msr |= MSR_DSR;
		if (u->mcr & MCR_RTS)
			msr |= MSR_CTS;
		if (u->mcr & MCR_OUT1)
			msr |= MSR_RI;
		if (u->mcr & MCR_OUT2)
			msr |= MSR_DCD;
		return msr;
	}
	return MSR_DCD | MSR_DSR | MSR_CTS;
}

uint8_t bh_uart_read(struct bh_uart *u, unsigned int off)
{
	uint8_t val = 0xff;

	pthread_mutex_lock(&u->lock);
	switch (off) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			val = u->dll;
			break;
		}
		val = 0;
		if (u->rx_len) {
			val = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % BH_UART_RX_BUF;
			u->rx_len--;
		}
		break;
	case UART_IER:
		val = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case UART_IIR_FCR:
		val = uart_iir(u);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if ((val & 0x0f) == IIR_THRI)
			u->thr_ipending = 0;
		break;
	case UART_LCR:
		val = u->lcr;
		break;
	case UART_MCR:
		val = u->mcr;
		break;
	case UART_LSR:
		val = LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0);
		break;
	case UART_MSR:
		val = uart_msr(u);
		break;
	case UART_SCR:
		val = u->scr;
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return val;
}

void bh_uart_write(struct bh_uart *u, unsigned int off, uint8_t val)
{
	uint8_t out[BH_UART_TX_BUF];
	size_t nout = 0;

	/* Only a THR write can complete a line: only it may output, and so
	 * take out_lock (first, as everywhere). */
	if (off == UART_RBR_THR)
		pthread_mutex_lock(&u->out_lock);
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB) {
			u->dll = val;
			break;
		}
		/* Lower the line first so that the next pending interrupt is
		 * a fresh edge. */
		u->thr_ipending = 0;
		uart_update_irq(u);
		if (uart_transmit(u, val))
			nout = uart_tx_take_locked(u, out);
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = val;
			break;
		}
		/* Enabling THRI with an empty holding register interrupts at
		 * once; Linux's 8250 start-up test relies on it. */
		if (val & IER_THRI)
			u->thr_ipending = 1;
		u->ier = val & IER_MASK;
		break;
	case UART_IIR_FCR:
		u->fcr = val & 0xc9;
		if (val & FCR_CLEAR_RX) {
			u->rx_head = 0;
			u->rx_len = 0;
		}
		break;
	case UART_LCR:
		u->lcr = val;
		break;
	case UART_MCR:
		u->mcr = val & MCR_MASK;
		break;
	case UART_SCR:
		u->scr = val;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	if (off == UART_RBR_THR) {
		uart_output(u, out, nout);
		pthread_mutex_unlock(&u->out_lock);
	}
}

size_t bh_uart_receive(struct bh_uart *u, const uint8_t *data, size_t len)
{
	size_t n;

	pthread_mutex_lock(&u->lock);
	n = BH_UART_RX_BUF - u->rx_len;
	if (n > len)
		n = len;
	for (size_t i = 0; i < n; i++)
		uart_rx_push(u, data[i]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

void bh_uart_flush(struct bh_uart *u)
{
	uint8_t out[BH_UART_TX_BUF];
	size_t n;

	pthread_mutex_lock(&u->out_lock);
	pthread_mutex_lock(&u->lock);
	n = uart_tx_take_locked(u, out);
	pthread_mutex_unlock(&u->lock);
	uart_output(u, out, n);
	pthread_mutex_unlock(&u->out_lock);
}

int bh_uart_tx_pending(struct bh_uart *u)
{
	return __atomic_load_n(&u->tx_len, __ATOMIC_RELAXED) != 0;
}

void bh_uart_save(struct bh_uart *u, Bh__UartState *s, uint8_t *buf)
{
	bh__uart_state__init(s);
	pthread_mutex_lock(&u->lock);
	s->ier = u->ier;
	s->lcr = u->lcr;
	s->mcr = u->mcr;
	s->scr = u->scr;
	s->fcr = u->fcr;
	s->dll = u->dll;
	s->dlm = u->dlm;
	s->thr_ipending = u->thr_ipending != 0;
	for (size_t i = 0; i < u->rx_len; i++)
		buf[i] = u->rx[(u->rx_head + i) % BH_UART_RX_BUF];
	s->rx.data = buf;
	s->rx.len = u->rx_len;
	memcpy(buf + BH_UART_RX_BUF, u->tx, u->tx_len);
	s->tx.data = buf + BH_UART_RX_BUF;
	s->tx.len = u->tx_len;
	pthread_mutex_unlock(&u->lock);
}

int bh_uart_restore(struct bh_uart *u, const Bh__UartState *s)
{
	/* Only what the guest could have written: the masks of the writes. */
	if ((s->ier & ~(uint32_t)IER_MASK) || s->lcr > 0xff ||
	    (s->mcr & ~(uint32_t)MCR_MASK) || s->scr > 0xff ||
	    (s->fcr & ~(uint32_t)0xc9) || s->dll > 0xff || s->dlm > 0xff ||
	    s->rx.len > BH_UART_RX_BUF || s->tx.len > BH_UART_TX_BUF ||
	    (s->rx.len && !s->rx.data) || (s->tx.len && !s->tx.data))
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	u->ier = (uint8_t)s->ier;
	u->lcr = (uint8_t)s->lcr;
	u->mcr = (uint8_t)s->mcr;
	u->scr = (uint8_t)s->scr;
	u->fcr = (uint8_t)s->fcr;
	u->dll = (uint8_t)s->dll;
	u->dlm = (uint8_t)s->dlm;
	u->thr_ipending = s->thr_ipending;
	if (s->rx.len)
		memcpy(u->rx, s->rx.data, s->rx.len);
	u->rx_head = 0;
	u->rx_len = s->rx.len;
	if (s->tx.len)
		memcpy(u->tx, s->tx.data, s->tx.len);
	__atomic_store_n(&u->tx_len, s->tx.len, __ATOMIC_RELEASE);
	if (s->tx.len && u->ops && u->ops->tx_pending)
		u->ops->tx_pending(u->opaque);
	/* The line as the restored registers say, whatever it was. */
	u->irq_level = -1;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}
