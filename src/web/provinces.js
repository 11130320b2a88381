/** The 63 provinces and centrally-run cities by their GSO administrative code. */
const PROVINCES = [
  ['01', 'Hà Nội', 'Hanoi'], ['02', 'Hà Giang'], ['04', 'Cao Bằng'], ['06', 'Bắc Kạn'], ['08', 'Tuyên Quang'],
  ['10', 'Lào Cai'], ['11', 'Điện Biên'], ['12', 'Lai Châu'], ['14', 'Sơn La'], ['15', 'Yên Bái'],
  ['17', 'Hòa Bình'], ['19', 'Thái Nguyên'], ['20', 'Lạng Sơn'], ['22', 'Quảng Ninh'], ['24', 'Bắc Giang'],
  ['25', 'Phú Thọ'], ['26', 'Vĩnh Phúc'], ['27', 'Bắc Ninh'], ['30', 'Hải Dương'], ['31', 'TP. Hải Phòng', 'Hai Phong City'],
  ['33', 'Hưng Yên'], ['34', 'Thái Bình'], ['35', 'Hà Nam'], ['36', 'Nam Định'], ['37', 'Ninh Bình'],
  ['38', 'Thanh Hóa'], ['40', 'Nghệ An'], ['42', 'Hà Tĩnh'], ['44', 'Quảng Bình'], ['45', 'Quảng Trị'],
  ['46', 'Thừa Thiên Huế'], ['48', 'TP. Đà Nẵng', 'Da Nang City'], ['49', 'Quảng Nam'], ['51', 'Quảng Ngãi'], ['52', 'Bình Định'],
  ['54', 'Phú Yên'], ['56', 'Khánh Hòa'], ['58', 'Ninh Thuận'], ['60', 'Bình Thuận'], ['62', 'Kon Tum'],
  ['64', 'Gia Lai'], ['66', 'Đắk Lắk'], ['67', 'Đắk Nông'], ['68', 'Lâm Đồng'], ['70', 'Bình Phước'],
  ['72', 'Tây Ninh'], ['74', 'Bình Dương'], ['75', 'Đồng Nai'], ['77', 'Bà Rịa - Vũng Tàu'], ['79', 'TP. Hồ Chí Minh', 'Ho Chi Minh City'],
  ['80', 'Long An'], ['82', 'Tiền Giang'], ['83', 'Bến Tre'], ['84', 'Trà Vinh'], ['86', 'Vĩnh Long'],
  ['87', 'Đồng Tháp'], ['89', 'An Giang'], ['91', 'Kiên Giang'], ['92', 'TP. Cần Thơ', 'Can Tho City'], ['93', 'Hậu Giang'],
  ['94', 'Sóc Trăng'], ['95', 'Bạc Liêu'], ['96', 'Cà Mau'],
]

const plain = (s) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/đ/g, 'd').replace(/Đ/g, 'D')

/** [{code, name}] in the given language; English names are the Vietnamese ones without diacritics. */
export const provinces = (lang) => PROVINCES.map(([code, vi, en]) => ({ code, name: lang === 'vi' ? vi : (en ?? plain(vi)) }))

export const provinceName = (code, lang) => provinces(lang).find((p) => p.code === code)?.name ?? code
