// Self-test of the CUDA emulator (emulated builds only): runs one named case of
// csrc/emu/emu_selftest.cu and returns its outputs; a case the emulator must reject raises.
#pragma once
#include <string>
#include <vector>

namespace sal {

std::vector<double> emu_selftest(const std::string& name);

}  // namespace sal
