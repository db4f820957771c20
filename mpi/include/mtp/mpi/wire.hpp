// SPDX-License-Identifier: MIT
// How values cross ranks: trivially copyable types as their bytes, other types through cereal
// (binary archive) when they have serialize (or save/load) functions. A type that can do
// neither fails to compile, naming it (see mtp::mpi::wire::cannot_cross_ranks).
//
// Ranks run one program (SPMD), so both ends agree on every type's layout. Pointers inside a
// trivially copyable type travel as numbers and mean nothing on the other rank: such types
// must not be sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <mtp/core/forwarding.hpp>
#include <mtp/core/messages.hpp>
#include <mtp/core/result.hpp>
#include <mtp/mpi/environment.hpp>

namespace mtp::mpi::wire {

/// Bytes that a message takes from where they lie, not copied into it (see environment.hpp).
using borrowed = impl::borrowed;

/// Bytes being written: one MPI message.
class writer {
 public:
  writer() = default;
  /// Writes into `buffer` (emptied first), keeping its capacity.
  explicit writer(std::vector<char>&& buffer) : bytes_(std::move(buffer)) { bytes_.clear(); }
  void raw(const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    bytes_.insert(bytes_.end(), c, c + n);
  }
  /// Adds `n` bytes at `p` to the message without copying them: they are sent from there,
  /// so they must stay alive and unchanged until the message has been sent.
  void borrow(const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    if (!borrowed_.empty() && borrowed_.back().at == bytes_.size() &&
        borrowed_.back().data + borrowed_.back().size == c) {
      borrowed_.back().size += n;  // the next element of the same array
      return;
    }
    borrowed_.push_back({bytes_.size(), c, n});
  }
  [[nodiscard]] std::vector<borrowed>& borrowed_parts() noexcept { return borrowed_; }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  void pod(const T& v) { raw(&v, sizeof(T)); }
  void str(const std::string& s) {
    pod(static_cast<std::uint64_t>(s.size()));
    raw(s.data(), s.size());
  }
  [[nodiscard]] std::vector<char>& bytes() noexcept { return bytes_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
  void reserve(std::size_t n) { bytes_.reserve(bytes_.size() + n); }

 private:
  std::vector<char> bytes_;
  std::vector<borrowed> borrowed_;  // in message order
};

/// Bytes being read; throws std::out_of_range on a short message.
class reader {
 public:
  reader(const char* p, std::size_t n) noexcept : p_(p), end_(p + n) {}
  const char* take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) throw std::out_of_range("mtp::mpi: truncated message");
    const char* at = p_;
    p_ += n;
    return at;
  }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  T pod() {
    // The bytes become a T (an implicit-lifetime type) in suitably aligned storage.
    alignas(T) unsigned char storage[sizeof(T)];
    std::memcpy(storage, take(sizeof(T)), sizeof(T));
    return *std::launder(reinterpret_cast<T*>(storage));
  }
  std::string str() {
    const auto n = pod<std::uint64_t>();
    const char* p = take(n);
    return std::string(p, n);
  }
  [[nodiscard]] bool done() const noexcept { return p_ == end_; }
  [[nodiscard]] const char* at() const noexcept { return p_; }
  [[nodiscard]] std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - p_); }

 private:
  const char* p_;
  const char* end_;
};

template <class T>
inline constexpr bool by_cereal =
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
    cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

template <class T>
inline constexpr bool serializable_member_call = false;

/// Whether T can cross ranks.
template <class T>
inline constexpr bool serializable = std::is_trivially_copyable_v<T> || by_cereal<T> || serializable_member_call<T>;

// A member_call crosses as its id and then each argument.
template <class... S>
inline constexpr bool all_serializable = (serializable<S> && ...);
template <class Tuple>
inline constexpr bool tuple_serializable = false;
template <class... S>
inline constexpr bool tuple_serializable<std::tuple<S...>> = all_serializable<S...>;
template <auto M>
inline constexpr bool serializable_member_call<member_call<M>> = tuple_serializable<typename member_call<M>::traits::args>;

/// The compile error for a type that cannot cross ranks: the instantiation names it.
template <class T>
struct cannot_cross_ranks {
  static_assert(serializable<T>,
                "mtp::mpi: this type cannot cross ranks: it is not trivially copyable and has no cereal "
                "serialize (or save/load) function; the type is the template argument of "
                "mtp::mpi::wire::cannot_cross_ranks<T> named below");
  static constexpr bool ok = serializable<T>;
};

template <class... A>
void put_tuple(writer& w, const std::tuple<A...>& t);
template <class Tuple>
Tuple get_args(reader& r);

template <class T>
void put(writer& w, const T& v) {
  static_assert(cannot_cross_ranks<T>::ok);
  if constexpr (std::is_trivially_copyable_v<T>) {
    w.pod(v);
  } else if constexpr (is_member_call_v<T>) {
    w.pod(v.id);
    put_tuple(w, v.args);
  } else {
    std::ostringstream os(std::ios::binary);
    {
      cereal::BinaryOutputArchive ar(os);
      ar(v);
    }
    w.str(std::move(os).str());
  }
}

template <class T>
T get(reader& r) {
  static_assert(cannot_cross_ranks<T>::ok);
  if constexpr (std::is_trivially_copyable_v<T>) {
    return r.pod<T>();
  } else if constexpr (is_member_call_v<T>) {
    const auto id = r.pod<id_t>();
    return T{id, get_args<typename T::traits::args>(r)};
  } else {
    static_assert(std::is_default_constructible_v<T>,
                  "mtp::mpi: a type that crosses ranks through cereal needs a default constructor");
    std::istringstream is(r.str(), std::ios::binary);
    cereal::BinaryInputArchive ar(is);
    T v{};
    ar(v);
    return v;
  }
}

/// Trivially copyable values larger than this are decoded on the heap, never on the stack: a
/// request may be megabytes, and a thread's stack (the communication thread's too) is 8 MiB.
inline constexpr std::size_t k_stack_max = 4096;

/// Trivially copyable values of at least this size are sent from the caller's object by the
/// calls whose caller waits (put_borrowing), not copied into the message.
inline constexpr std::size_t k_borrow_min = std::size_t{64} << 10;

/// Writes `v` as put does, except that a large trivially copyable value is borrowed (sent from
/// where it lies): the caller keeps `v` alive and unchanged until the message has been sent.
template <class T>
void put_borrowing(writer& w, const T& v);

/// The next `n` trivially copyable values of `r`, read where they lie in the message: nothing
/// is copied. Null, reading nothing, when the bytes there are not aligned for T. The
/// message's storage must be writable (every buffer the communication thread hands a pool
/// is, and so is a queued copy of one).
template <class T>
  requires std::is_trivially_copyable_v<T>
T* in_place(reader& r, std::size_t n) {
  if (reinterpret_cast<std::uintptr_t>(r.at()) % alignof(T) != 0) return nullptr;
  if (n > r.left() / sizeof(T)) throw std::out_of_range("mtp::mpi: truncated message");
  void* p = const_cast<char*>(r.take(n * sizeof(T)));
  // T is an implicit-lifetime type: moving its bytes onto themselves begins the lives of the
  // values they hold there (and copies nothing), as copying them elsewhere would.
  return std::launder(static_cast<T*>(std::memmove(p, p, n * sizeof(T))));
}

/// Values decoded into one heap block, none of them copied through the stack; destroyed with
/// it. Sized once; read() adds the next value. Built from a reader, trivially copyable values
/// are read in place when aligned (see in_place), without a block of their own.
template <class T>
class decoded {
 public:
  explicit decoded(std::size_t capacity) : data_(std::allocator<T>().allocate(capacity)), capacity_(capacity) {}
  /// The next `n` values of `r`.
  decoded(reader& r, std::size_t n) : decoded(where(r, n), n) {
    if (owned_) {
      for (std::size_t i = 0; i < n; ++i) read(r);
    }
  }
  decoded(const decoded&) = delete;
  decoded& operator=(const decoded&) = delete;
  ~decoded() {
    if (!owned_) return;  // values in the message: trivially destructible, the message's storage
    std::destroy_n(data_, size_);
    std::allocator<T>().deallocate(data_, capacity_);
  }
  /// Decodes the next value from `r`; precondition: fewer than capacity values so far.
  void read(reader& r) {
    static_assert(cannot_cross_ranks<T>::ok);
    if constexpr (std::is_trivially_copyable_v<T>) {
      // T is an implicit-lifetime type: copying its bytes into the storage begins its life.
      std::memcpy(static_cast<void*>(data_ + size_), r.take(sizeof(T)), sizeof(T));
    } else {
      ::new (static_cast<void*>(data_ + size_)) T(get<T>(r));
    }
    ++size_;
  }
  [[nodiscard]] T* begin() const noexcept { return std::launder(data_); }
  [[nodiscard]] T* end() const noexcept { return begin() + size_; }

  /// The values as a range that moves them out. (Not std::ranges::subrange, which clang 14
  /// cannot instantiate with libstdc++ 12 here.)
  struct moving {
    std::move_iterator<T*> first, last;
    [[nodiscard]] std::move_iterator<T*> begin() const { return first; }
    [[nodiscard]] std::move_iterator<T*> end() const { return last; }
    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(last - first); }
  };
  [[nodiscard]] moving moved() const { return {std::move_iterator<T*>(begin()), std::move_iterator<T*>(end())}; }

 private:
  static T* where(reader& r, std::size_t n) {
    if constexpr (std::is_trivially_copyable_v<T>) return in_place<T>(r, n);
    else return nullptr;
  }
  // `values`: n values already in place; null: a block of n to decode into.
  decoded(T* values, std::size_t n)
      : data_(values != nullptr ? values : std::allocator<T>().allocate(n)),
        capacity_(n),
        size_(values != nullptr ? n : 0),
        owned_(values == nullptr) {}

  T* data_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  bool owned_ = true;  // false: the values lie in the message
};

template <class T>
void put_borrowing(writer& w, const T& v) {
  if constexpr (std::is_trivially_copyable_v<T> && sizeof(T) >= k_borrow_min) {
    static_assert(cannot_cross_ranks<T>::ok);
    w.borrow(&v, sizeof(T));
  } else {
    put(w, v);
  }
}

/// Constructor arguments: each element on its own (trivially copyable ones as bytes).
template <class... A>
void put_tuple(writer& w, const std::tuple<A...>& t) {
  std::apply([&](const A&... a) { (put(w, a), ...); }, t);
}
template <class... A>
std::tuple<A...> get_tuple(reader& r) {
  return std::tuple<A...>{get<A>(r)...};  // braces: evaluated left to right
}
template <class Tuple>
struct args_reader;
template <class... A>
struct args_reader<std::tuple<A...>> {
  static std::tuple<A...> get(reader& r) { return get_tuple<A...>(r); }
};
/// A tuple type's elements, as put_tuple wrote them.
template <class Tuple>
Tuple get_args(reader& r) {
  return args_reader<Tuple>::get(r);
}

}  // namespace mtp::mpi::wire
