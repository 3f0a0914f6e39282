/* A deliberately broken VST2 "synth" for tests: it crashes where CRASHY_MODE says.
 *   CRASHY_MODE=load    segfault inside VSTPluginMain (while the host loads it)
 *   CRASHY_MODE=render  segfault in processReplacing once it has received MIDI (a render with notes)
 *   CRASHY_MODE=abort   abort() there instead
 *   CRASHY_MODE=presets a sine (louder with "level") that segfaults only on presets with
 *                       "tone" >= 0.9: about 10% of random presets
 * Otherwise it is a silent synth with two parameters. Built by tests/plugin_helpers.py with cc.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct AEffect AEffect;
typedef intptr_t (*HostCallback)(AEffect *, int32_t, int32_t, intptr_t, void *, float);
typedef intptr_t (*DispatcherProc)(AEffect *, int32_t, int32_t, intptr_t, void *, float);
typedef void (*ProcessProc)(AEffect *, float **, float **, int32_t);
typedef void (*SetParameterProc)(AEffect *, int32_t, float);
typedef float (*GetParameterProc)(AEffect *, int32_t);

struct AEffect {
    int32_t magic;
    DispatcherProc dispatcher;
    ProcessProc process;
    SetParameterProc setParameter;
    GetParameterProc getParameter;
    int32_t numPrograms, numParams, numInputs, numOutputs, flags;
    intptr_t resvd1, resvd2;
    int32_t initialDelay, realQualities, offQualities;
    float ioRatio;
    void *object, *user;
    int32_t uniqueID, version;
    ProcessProc processReplacing;
    void *processDoubleReplacing;
    char future[56];
};

static float params[2] = {0.5f, 0.25f};
static int got_midi = 0;
static double phase = 0.0;

static const char *mode(void) { const char *m = getenv("CRASHY_MODE"); return m ? m : ""; }

static void crash(void) {
    if (strcmp(mode(), "abort") == 0) abort();
    volatile int *p = 0;
    *p = 42;
}

static intptr_t dispatcher(AEffect *e, int32_t op, int32_t index, intptr_t value, void *ptr, float opt) {
    (void)e; (void)value; (void)opt;
    switch (op) {
    case 8: /* effGetParamName */
    case 6: /* effGetParamLabel */
        if (op == 8) strcpy((char *)ptr, index == 0 ? "level" : "tone"); else ((char *)ptr)[0] = 0;
        return 0;
    case 7: /* effGetParamDisplay */
        strcpy((char *)ptr, "0.5");
        return 0;
    case 45: case 47: case 48: /* effect name, vendor, product */
        strcpy((char *)ptr, "crashy");
        return 1;
    case 35: return 2; /* effGetPlugCategory: synth */
    case 25: /* effProcessEvents: VstEvents { int32 numEvents; intptr reserved; ... } */
        if (ptr && *(int32_t *)ptr > 0) { got_midi = 1; phase = 0.0; }
        return 1;
    case 58: return 2400; /* effGetVstVersion */
    default: return 0;
    }
}

static void setParameter(AEffect *e, int32_t i, float v) { (void)e; if (i >= 0 && i < 2) params[i] = v; }
static float getParameter(AEffect *e, int32_t i) { (void)e; return (i >= 0 && i < 2) ? params[i] : 0.0f; }

static void processReplacing(AEffect *e, float **in, float **out, int32_t n) {
    (void)e; (void)in;
    if (got_midi && (strcmp(mode(), "render") == 0 || strcmp(mode(), "abort") == 0)) crash();
    if (got_midi && strcmp(mode(), "presets") == 0) {
        if (params[1] >= 0.9f) crash();
        for (int32_t i = 0; i < n; i++) {
            out[0][i] = out[1][i] = (float)((0.2 + 0.6 * params[0]) * sin(phase));
            phase += 2.0 * 3.14159265358979 * 440.0 / 16000.0;
        }
        return;
    }
    memset(out[0], 0, sizeof(float) * (size_t)n);
    memset(out[1], 0, sizeof(float) * (size_t)n);
}

__attribute__((visibility("default"))) AEffect *VSTPluginMain(HostCallback host) {
    (void)host;
    if (strcmp(mode(), "load") == 0) crash();
    AEffect *e = calloc(1, sizeof(AEffect));
    e->magic = ('V' << 24) | ('s' << 16) | ('t' << 8) | 'P';
    e->dispatcher = dispatcher;
    e->process = processReplacing;
    e->setParameter = setParameter;
    e->getParameter = getParameter;
    e->numPrograms = 0;
    e->numParams = 2;
    e->numInputs = 0;
    e->numOutputs = 2;
    e->flags = (1 << 4) | (1 << 8); /* canReplacing | isSynth */
    e->uniqueID = ('c' << 24) | ('r' << 16) | ('s' << 8) | 'h';
    e->version = 1;
    e->processReplacing = processReplacing;
    return e;
}
