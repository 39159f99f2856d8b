/* Long-mode entry state for the boot vCPU: GDT, page tables, registers. */
#include <errno.h>
#include <string.h>

#include "boot.h"
#include "bulkhead/platform.h"
#include "bulkhead/le.h"

#define GDT_ENTRIES   5
#define GDT_CODE64    0x00af9b000000ffffULL
#define GDT_DATA      0x00cf93000000ffffULL
#define GDT_TSS	      0x008f8b000000ffffULL
#define PAGE_SIZE     0x1000ULL
#define PD_COUNT      4 /* one per GiB of the low 4 GiB */
#define PT_ENTRIES    512
#define PTE_PRESENT   0x1ULL
#define PTE_WRITE     0x2ULL
#define PTE_HUGE      0x80ULL /* 2 MiB page in a page directory */
#define HUGE_PAGE     0x200000ULL
#define CR0_PE	      0x1ULL
#define CR0_ET	      0x10ULL
#define CR0_PG	      0x80000000ULL
#define CR4_PAE	      0x20ULL
#define EFER_LME      0x100ULL
#define EFER_LMA      0x400ULL
#define RFLAGS_FIXED  0x2ULL
#define SEG_TYPE_CODE 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS  0xb /* 64-bit TSS, busy */
/* KVM takes byte-granular limits: 0xfffff pages of 4 KiB. */
#define SEG_LIMIT_4G 0xffffffffU

static int write_gdt(struct bh_guest_mem *gm)
{
	uint8_t *gdt = bh_guest_mem_ptr(gm, BH_GDT_ADDR, GDT_ENTRIES * 8);

	if (gdt == NULL)
		return -EFAULT;
	memset(gdt, 0, GDT_ENTRIES * 8);
	bh_put_le64(gdt + BH_BOOT_CS, GDT_CODE64);
	bh_put_le64(gdt + BH_BOOT_DS, GDT_DATA);
	/* Never loaded by the guest (KVM sets TR directly), so the upper
	 * half of the 16-byte long-mode descriptor can stay outside the
	 * limit. */
	bh_put_le64(gdt + BH_BOOT_TR, GDT_TSS);
	return 0;
}

static int write_page_tables(struct bh_guest_mem *gm)
{
	uint8_t *pml4 = bh_guest_mem_ptr(gm, BH_PML4_ADDR, PAGE_SIZE);
	uint8_t *pdpt = bh_guest_mem_ptr(gm, BH_PDPT_ADDR, PAGE_SIZE);
	uint8_t *pd = bh_guest_mem_ptr(gm, BH_PD_ADDR, PD_COUNT * PAGE_SIZE);
	uint64_t i;

	if (pml4 == NULL || pdpt == NULL || pd == NULL)
		return -EFAULT;
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	bh_put_le64(pml4, BH_PDPT_ADDR | PTE_PRESENT | PTE_WRITE);
	for (i = 0; i < PD_COUNT; i++)
		bh_put_le64(pdpt + i * 8, (BH_PD_ADDR + i * PAGE_SIZE) |
					      PTE_PRESENT | PTE_WRITE);
	for (i = 0; i < PD_COUNT * PT_ENTRIES; i++)
		bh_put_le64(pd + i * 8, (i * HUGE_PAGE) | PTE_PRESENT |
					    PTE_WRITE | PTE_HUGE);
	return 0;
}

static void flat_segment(Bh__Segment *s, uint32_t selector, uint32_t type)
{
	s->base_addr = 0;
	s->limit = SEG_LIMIT_4G;
	s->selector = selector;
	s->type = type;
	s->present = 1;
	s->dpl = 0;
	s->db = 0;
	s->s = 1;
	s->l = 0;
	s->g = 1;
	s->avl = 0;
}

int bh_boot_setup_long_mode(struct bh_guest_mem *gm, uint64_t entry,
			    uint64_t zero_page, Bh__VcpuState *st)
{
	int r;

	if (st->cs == NULL || st->ds == NULL || st->tr == NULL)
		return -EINVAL;
	r = write_gdt(gm);
	if (r < 0)
		return r;
	r = write_page_tables(gm);
	if (r < 0)
		return r;

	/* The segments mirror the GDT descriptors, as if loaded from them. */
	flat_segment(st->cs, BH_BOOT_CS, SEG_TYPE_CODE);
	st->cs->l = 1;
	flat_segment(st->ds, BH_BOOT_DS, SEG_TYPE_DATA);
	st->ds->db = 1;
	flat_segment(st->tr, BH_BOOT_TR, SEG_TYPE_TSS);
	st->tr->s = 0;

	st->gdt_base = BH_GDT_ADDR;
	st->gdt_limit = GDT_ENTRIES * 8 - 1;
	/* Empty: a zero limit admits no gate, so nothing is written at
	 * BH_IDT_ADDR, which lies inside the GDT's TSS descriptor. */
	st->idt_base = BH_IDT_ADDR;
	st->idt_limit = 0;

	st->rip = entry;
	st->rsi = zero_page;
	st->rsp = BH_BOOT_STACK_ADDR;
	st->rbp = BH_BOOT_STACK_ADDR;
	st->rflags = RFLAGS_FIXED;
	st->cr0 = CR0_PE | CR0_ET | CR0_PG;
	st->cr3 = BH_PML4_ADDR;
	st->cr4 = CR4_PAE;
	st->efer = EFER_LME | EFER_LMA;
	return 0;
}

/*
 * Code at the x86 reset vector (F000:FFF0). There is no firmware, but Linux
 * may still jump there: on hardware-reduced ACPI it picks EFI reboot, and
 * without EFI runtime services it falls back to a real-mode jump to the
 * BIOS. The stub pulses the i8042 reset line instead, which ends the run
 * with a reset like every other reboot path.
 */
int bh_boot_write_reset_vector(struct bh_guest_mem *gm)
{
	static const uint8_t stub[] = {
		0xb0, 0xfe, /* mov al, 0xfe */
		0xe6, 0x64, /* out 0x64, al */
		0xf4,	    /* hlt */
		0xeb, 0xfd, /* jmp back to hlt */
	};

	return bh_guest_mem_write(gm, BH_RESET_VECTOR_ADDR, stub, sizeof(stub));
}
