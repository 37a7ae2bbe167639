/* Regression: a C program (no libstdc++ of its own) dlopens a C++ plugin
 * whose operator new runs out of memory.  brisk's operator new, which
 * serves the plugin, must find the C++ runtime that came with the plugin:
 * the throwing form throws std::bad_alloc, the nothrow form returns null
 * (it used to trap).  Argument: the plugin's path. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    void *h = dlopen(argc > 1 ? argv[1] : "./plugin.so", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("FAIL: %s\n", dlerror());
        return 1;
    }
    int (*run)(void) = (int (*)(void))dlsym(h, "plugin_run");
    return run ? run() : 1;
}
