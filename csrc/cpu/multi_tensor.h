// The list ("multi-tensor") form: one native call updates many arrays, and
// threads split the concatenation of all their elements, so 200 small
// tensors use every core as well as one large one does.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

#include "parallel.h"

namespace fastopt {

// K pointers per tensor (param, grad, state...) and its element count.
template <typename T, int K>
struct TensorList {
  std::vector<std::array<T*, K>> ptrs;
  std::vector<std::size_t> sizes;
};

// Calls kernel(ptrs_of_tensor, offset, length) over every element of every
// tensor, in parallel over the total element count.
template <typename T, int K, typename Kernel>
void multi_tensor_apply(const TensorList<T, K>& list, std::size_t grain, const Kernel& kernel) {
  const std::size_t count = list.sizes.size();
  std::vector<std::size_t> start(count + 1, 0);
  for (std::size_t t = 0; t < count; ++t) start[t + 1] = start[t] + list.sizes[t];
  parallel_for(start[count], grain, [&](std::size_t b, std::size_t e) {
    std::size_t t = static_cast<std::size_t>(std::upper_bound(start.begin(), start.end(), b) - start.begin()) - 1;
    while (b < e) {
      const std::size_t len = std::min(e, start[t + 1]) - b;
      if (len) kernel(list.ptrs[t], b - start[t], len);
      b += len;
      ++t;
    }
  });
}

}  // namespace fastopt
