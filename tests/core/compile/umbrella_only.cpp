// SPDX-License-Identifier: MIT
// The umbrella header alone: what every translation unit that uses the library pays before
// its own code (compile.umbrella_preprocessed_lines counts its preprocessed lines).
#include <mtp/mtp.hpp>
