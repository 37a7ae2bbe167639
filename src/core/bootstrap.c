/* Core bootstrap and fork handlers (see bootstrap.h). */
#include "bootstrap.h"

#include "../os/lock.h"
#include "../os/os.h"
#include "../page_heap/meta.h"
#include "../page_heap/page_heap.h"
#include "central_list.h"
#include "decay.h"
#include "options.h"
#include "size_class.h"

int bk_core_ready;
static bk_lock_t init_lock = BK_LOCK_INIT;

static unsigned derive_stripes(void)
{
    unsigned n = (unsigned)bk_opt(BK_OPT_stripes);
    if (n == 0) {
        n = bk_os_cpu_count();
        if (n > 16)
            n = 16;
    }
    unsigned p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* Fill the page map's class words with the boundary checks of the classes
 * (size_class.h); class 0 and the values past the last class stay 0. */
static void install_class_checks(void)
{
    uint64_t (*w)[BK_PM_CLASS_VALUES] = bk_pm_fast.class_word;
    for (unsigned cls = 1; cls < BK_NUM_CLASSES; cls++)
        bk_class_check_words(&bk_classes[cls], &w[BK_CHECK_OFF_MASK][cls],
                             &w[BK_CHECK_DIVC][cls], &w[BK_CHECK_LIMIT][cls]);
}

void bk_core_init(void)
{
    bk_lock(&init_lock);
    if (!bk_core_ready) {
        bk_options_parse(bk_os_getenv("BRISK_CONF"));
        bk_decay_init();
        install_class_checks();
        bk_central_init(derive_stripes());
        bk_store_release(&bk_core_ready, 1);
    }
    bk_unlock(&init_lock);
}

void bk_core_fork_prepare(void)
{
    bk_lock(&init_lock);
    bk_decay_fork_prepare();
    bk_central_lock_all();
    bk_ph_lock();
    bk_meta_lock_all();
}

void bk_core_fork_parent(void)
{
    bk_meta_unlock_all();
    bk_ph_unlock();
    bk_central_unlock_all();
    bk_decay_fork_parent();
    bk_unlock(&init_lock);
}

/* The forking thread holds every lock (prepare took them), and it is the
 * thread that continues in the child: it releases them as the parent does.
 * (Re-initialising a held mutex would be undefined behaviour.) */
void bk_core_fork_child(void)
{
    bk_meta_unlock_all();
    bk_ph_unlock();
    bk_central_unlock_all();
    bk_decay_fork_child();
    bk_unlock(&init_lock);
}
