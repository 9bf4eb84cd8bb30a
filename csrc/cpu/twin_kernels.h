#pragma once
#include <cstddef>
#include <vector>

namespace fastopt {
// read_write[k][i] += sum_j read_only[j][i] (1 when there are none); 1-4
// written arrays, 0-2 read-only ones, all of n elements.
template <typename T>
void bandwidth_twin(const std::vector<T*>& read_write, const std::vector<const T*>& read_only,
                    std::size_t n);
}  // namespace fastopt
